"""One vocabulary across the commands: every option has a help line with its choices and default, one name
per concept, and the Python API's defaults are the command line's."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from experiments.cli import build_parser
from experiments.comparison import CompareConfig


def _parsers(parser, name="semcom"):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield f"{name} {sub_name}", sub
                yield from _parsers(sub, f"{name} {sub_name}")


PARSERS = dict(_parsers(build_parser()))


def _options(parser):
    return [a for a in parser._actions if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction))]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_option_has_help_with_choices_and_default(name):
    bad = []
    for a in _options(PARSERS[name]):
        text = a.help or ""
        if not text.strip() or text == argparse.SUPPRESS or text.strip().startswith("("):
            bad.append(f"{a.option_strings or a.dest}: no help")
            continue
        if a.choices is not None:
            missing = [c for c in a.choices if str(c) not in text]
            if missing:
                bad.append(f"{a.option_strings}: choices {missing} not in its help")
        if a.option_strings and a.nargs != 0 and a.default not in (None, [], argparse.SUPPRESS) \
                and "default" not in text.lower():
            bad.append(f"{a.option_strings}: default {a.default!r} not in its help")
    assert not bad, f"{name}: " + "; ".join(bad)


def test_one_name_for_the_ldpc_iterations():
    ber, compare = PARSERS["semcom ber"], PARSERS["semcom compare"]
    for p in (ber, compare):
        opts = {o for a in p._actions for o in a.option_strings}
        assert "--ldpc-iter" in opts and "--ldpc-decoder" in opts
    assert ber.parse_args(["--num-iter", "7", "--out", "x"]).ldpc_iter == 7      # the alias, said in the help
    help_text = next(a.help for a in ber._actions if "--ldpc-iter" in a.option_strings)
    assert "alias" in help_text and "--num-iter" in help_text
    assert compare.parse_args(["--ldpc-iter", "7", "--out", "x"]).ldpc_iter == 7


def test_ldpc_decoder_help_matches_the_code():
    from phy.fec.codes import LDPC5G, layered_precision

    # the layered decoder is offset min-sum ("oms"): the fixed-point kernel runs only for it
    assert layered_precision("cpu") == "int8" and layered_precision("cpu", {"cn_update": "nms"}) != "int8"
    for name in ("semcom ber", "semcom compare"):
        a = next(a for a in PARSERS[name]._actions if "--ldpc-decoder" in a.option_strings)
        assert "offset" in a.help and "normalised" not in a.help
        assert set(a.choices) == set(LDPC5G.DECODERS)


def test_compare_config_defaults_are_the_command_lines():
    args = PARSERS["semcom compare"].parse_args(["--out", "x"])
    from experiments.commands.compare import config_from_args

    cli = config_from_args(args)
    api = CompareConfig()
    for f in dataclasses.fields(CompareConfig):
        if f.name == "device":       # both "auto", resolved to this machine's device
            assert args.device == api.device == "auto"
            continue
        a, b = getattr(cli, f.name), getattr(api, f.name)
        assert (list(a) if isinstance(a, (list, tuple)) else a) == (list(b) if isinstance(b, (list, tuple)) else b), f.name


def test_snr_help_says_negative_starts_need_no_equals_sign():
    from experiments.cli import main

    for name in ("semcom ber", "semcom compare"):
        a = next(a for a in PARSERS[name]._actions if "--snr-db" in a.option_strings)
        assert "needs no '='" in a.help and a.help.lower().count("(default") == 1
    assert main(["channel", "--snr-db", "-2", "--channel", "awgn"]) == 0


def test_one_spelling_of_tdl_profiles_in_every_spec():
    from phy.channel.registry import canonical_channel_spec, make_channel

    assert canonical_channel_spec("tdl(model=tdl-C,speed=30)") == canonical_channel_spec("tdl(model=C,speed=30)")
    assert make_channel("tdl(model=tdl-C)", seed=0).model == "C"
    assert "tdl-C" in canonical_channel_spec("ofdm(model=tdl-C)")
    with pytest.raises(ValueError, match="tdl-A"):    # the message lists the shared spelling
        canonical_channel_spec("tdl(model=tdl-Z)")


def test_comma_list_options_name_their_choices():
    from experiments.commands.semclip_eval import SYSTEMS

    for opt in ("--systems", "--bandwidth-systems"):
        a = next(a for a in PARSERS["semcom semclip-eval"]._actions if opt in a.option_strings)
        assert all(s in a.help for s in SYSTEMS), (opt, a.help)
