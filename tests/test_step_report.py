"""compiled_step_report: the real train step compiled on abstract shapes over 8 fake devices."""

import json
import os
import subprocess
import sys
import textwrap

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import os, sys, json
    os.environ["XLA_FLAGS"] = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
    os.environ["JAX_PLATFORMS"] = "cpu"
    from configs.demo import get_config
    from molmo2_jax.step_report import compiled_step_report, format_report
    c = get_config()
    c.batch_size, c.seq_len, c.data.max_crops = 8, 64, 2
    c.mesh.data, c.mesh.fsdp = 1, -1  # the stage configs' FSDP mesh (the demo's own is data-parallel)
    # unrolled layers: XLA's cost_analysis counts a scan body once, the formula counts every layer
    small = compiled_step_report(c, scan_layers=False)
    four = compiled_step_report(c, num_devices=4, scan_layers=False)
    c.batch_size = 1
    one = compiled_step_report(c, num_devices=1, scan_layers=False)
    print(format_report(small))
    print(json.dumps({"small": small, "four": four, "one": one}))
""")


def test_compiled_step_report_of_the_real_step_on_8_fake_devices():
    run = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=ROOT), timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "temporaries" in run.stdout and "FLOPs per device" in run.stdout
    r = json.loads(run.stdout.strip().splitlines()[-1])
    small, four = r["small"], r["four"]
    assert small["devices"] == 8 and four["devices"] == 4 and small["mesh"]["fsdp"] == 8
    for k in ("argument_bytes", "output_bytes", "temp_bytes", "peak_bytes", "xla_flops_per_device"):
        assert small[k] > 0, k
    # the same batch on half the devices: twice the FLOPs and more temporaries per device
    assert 1.8 < four["xla_flops_per_device"] / small["xla_flops_per_device"] < 2.2
    assert four["temp_bytes"] > small["temp_bytes"]
    # FSDP splits activations by batch: one sequence per device costs about what one sequence on one device
    # costs (activations laid out along the hidden size instead hold all 8 sequences on every device)
    assert small["temp_bytes"] < 1.5 * r["one"]["temp_bytes"], (small["temp_bytes"], r["one"]["temp_bytes"])
    # the documented FLOPs formula (ViT and connector included) agrees with XLA's count
    assert 0.8 < small["formula_flops_per_device"] / small["xla_flops_per_device"] < 1.2
