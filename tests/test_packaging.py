"""What an installation relies on: a light command line, the deployed model found, outputs written with
normal permissions, errors that leave the command line's wording to the command line."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys

import pytest

from conftest import noise_image, write_raster

HEAVY = ("torch", "numpy", "rasterio", "geopandas", "scipy", "optuna", "matplotlib")


def _modules_after(code: str, *args: str) -> set[str]:
    """Top-level packages imported by ``code`` (run in a fresh interpreter with ``args`` as sys.argv[1:])."""
    probe = code + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    out = subprocess.run([sys.executable, "-c", probe, *args], check=True, capture_output=True, text=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_the_command_line_starts_without_the_heavy_libraries():
    mods = _modules_after("from geodrain.cli import cli")
    assert not mods & set(HEAVY), mods & set(HEAVY)


def test_detect_imports_neither_optuna_nor_matplotlib(tmp_path, random_bundle):
    raster = write_raster(tmp_path / "r.tif", noise_image(200, 200))
    code = ("import sys\nfrom geodrain.cli import cli\n"
            "cli(['detect', sys.argv[1], '-o', sys.argv[2], '-m', sys.argv[3], '-q'], standalone_mode=False)")
    mods = _modules_after(code, str(raster), str(tmp_path / "c.gpkg"), str(random_bundle))
    assert (tmp_path / "c.gpkg").is_file()
    assert "torch" in mods and not mods & {"optuna", "matplotlib"}


def test_the_deployed_model_is_found_and_geodrain_model_overrides_it(tmp_path, random_bundle):
    from geodrain.model.bundle import default_bundle_path, load_bundle, models_dir

    folder = models_dir()
    assert folder is not None and (folder / "DEFAULT").is_file()
    assert default_bundle_path() == folder / (folder / "DEFAULT").read_text().strip()
    assert load_bundle(default_bundle_path()).arch.bands == 4
    env = dict(os.environ, GEODRAIN_MODEL=str(random_bundle))
    out = subprocess.run([sys.executable, "-c", "from geodrain.model.bundle import default_bundle_path as d; "
                          "print(d())"], check=True, capture_output=True, text=True, env=env)
    assert out.stdout.strip() == str(random_bundle)


def test_atomic_outputs_have_normal_permissions(tmp_path, random_bundle):
    from geodrain.model.bundle import MANIFEST, load_bundle
    from geodrain.output import atomic_folder, write_json

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "new.json", {"a": 1})
        with atomic_folder(tmp_path / "folder") as tmp:
            write_json(tmp / "inside.json", {})
        bundle = tmp_path / "bundle"
        shutil.copytree(random_bundle, bundle)
        os.chmod(bundle / MANIFEST, 0o644)
        load_bundle(bundle).update_manifest(threshold=0.75)
        kept = tmp_path / "kept.json"
        kept.write_text("{}")
        os.chmod(kept, 0o640)
        write_json(kept, {"b": 2})
    finally:
        os.umask(old)

    def mode(p):
        return stat.S_IMODE(os.stat(p).st_mode)

    assert mode(tmp_path / "new.json") == 0o644                  # as open() makes it under umask 022
    assert mode(tmp_path / "folder") == 0o755 and mode(tmp_path / "folder" / "inside.json") == 0o644
    assert mode(bundle / MANIFEST) == 0o644 and load_bundle(bundle).threshold == 0.75
    assert mode(kept) == 0o640 and json.loads(kept.read_text()) == {"b": 2}   # a replaced file keeps its mode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle", "folder", "kept.json", "new.json"]


def test_an_existing_output_is_named_by_the_library_and_the_flag_by_the_command_line(tmp_path):
    from click.testing import CliRunner

    from geodrain.cli import cli
    from geodrain.errors import OutputExistsError
    from geodrain.output import check_output

    out = tmp_path / "o.gpkg"
    out.write_text("keep me")
    with pytest.raises(OutputExistsError) as e:
        check_output(out)
    assert str(e.value) == f"output exists: {out}"
    raster = write_raster(tmp_path / "r.tif", noise_image(200, 200))
    res = CliRunner().invoke(cli, ["detect", str(raster), "-o", str(out), "-q"])
    assert res.exit_code == 1 and out.read_text() == "keep me"
    assert res.stderr.strip() == f"geodrain: error: output exists: {out} (use --overwrite to replace it)"
