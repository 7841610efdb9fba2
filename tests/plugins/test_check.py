"""`benchsr check NAME`: the contract checks on one plugin, built-in or third-party, exit 0 with
what was checked, or exit 1 naming what failed."""
import pytest
from typer.testing import CliRunner

from benchsr.cli import app

from conftest import _main, fake_distribution

RULE_BREAKER = '''
import torch
from benchsr.contracts import Method

class RuleBreaker(Method):
    """Steps its optimiser by hand (no NaN guard, no grad scaler, no DDP averaging) and hands
    back values outside [0, 1]."""
    name = "rule-breaker"
    data = "unpaired"
    scales = (4,)

    def build(self):
        self.nets["G"] = torch.nn.Conv2d(1, 16, 3, padding=1)
        self.optimizers["G"] = torch.optim.Adam(self.nets["G"].parameters())

    def train_step(self, batch, step):
        loss = self.nets["G"](batch.lr).mean() ** 2
        self.optimizers["G"].zero_grad()
        loss.backward()
        self.optimizers["G"].step()
        return {"total_g": float(loss.detach())}

    def super_resolve(self, lr):
        return 2 * torch.nn.functional.pixel_shuffle(self.nets["G"](lr), 4)

PLUGINS = [RuleBreaker]
'''


@pytest.fixture
def rule_breaker(tmp_path, monkeypatch):
    (tmp_path / "rulebreaker.py").write_text(RULE_BREAKER)
    (tmp_path / "brokenplug.py").write_text("import a_module_that_does_not_exist\n")
    fake_distribution(tmp_path, "rulebreaker", {"rule-breaker": "rulebreaker",
                                                "broken": "brokenplug"})
    monkeypatch.syspath_prepend(str(tmp_path))


def _check(*args):
    return CliRunner().invoke(app, ["check", *args], env={"COLUMNS": "200"})


def test_a_plugin_that_breaks_the_contract_is_named_with_what_failed(rule_breaker):
    res = _check("rule-breaker")
    assert res.exit_code == 1, res.output
    lines = {line.split(":")[0].strip(): line for line in res.output.splitlines()}
    assert lines["FAIL  one training step through ctx.optimize"]
    assert "not [0, 1]" in lines["FAIL  output shape and range"]
    assert lines["ok    state_dict round trip"]
    said = " ".join(res.output.split())                 # the console may wrap the line
    assert "2 of 9 checks failed: one training step through ctx.optimize; output shape and " \
        "range" in said


def test_a_broken_plugin_fails_its_import_check(rule_breaker):
    res = _check("broken")
    assert res.exit_code == 1 and "a_module_that_does_not_exist" in res.output, res.output


def test_builtins_pass_and_say_what_was_checked():
    res = _check("srcyclegan", "--preset", "official")
    assert res.exit_code == 0, res.output
    assert "unpaired batch" in res.output and "all 9 checks passed" in res.output
    res = _check("lung-ct")
    assert res.exit_code == 0 and "x4, degradation" in res.output, res.output


def test_an_unknown_name_is_one_line_with_the_nearest(capsys, monkeypatch):
    code, _, err = _main(["check", "srcylegan"], capsys, monkeypatch)
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert "did you mean 'srcyclegan'" in err
