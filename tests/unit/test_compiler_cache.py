"""sccache's client configuration and statistics, as the build reads them (compiler_cache.py)."""

import json

import pytest

from tvmffi_wheel.compiling.compiler_cache import Distribution, describe_stats, read_distribution
from tvmffi_wheel.errors import TvmFfiWheelError


def stats(misses: int, dist: dict[str, int] | None = None, errors: int = 0) -> str:
    body = {"compile_requests": 2, "cache_hits": {"counts": {}}, "cache_misses": {"counts": {"CUDA": misses},
            "adv_counts": {"cuda [nvcc]": misses}}}
    if dist is not None:
        body |= {"dist_compiles": dist, "dist_errors": errors}
    return json.dumps({"stats": body})


def test_a_local_build_s_line_stays_as_it_was():
    assert describe_stats(stats(9)) == "sccache: 2 compile requests, 0 cache hits, 9 misses (cuda [nvcc] 9)"


def test_a_distributed_build_says_where_its_compiles_ran():
    line = describe_stats(stats(20, {"127.0.0.1:1": 11, "127.0.0.1:2": 7}), distributed=True)
    assert line.endswith("misses (cuda [nvcc] 20), 18 compiled on build servers, 2 ran here")
    failed = describe_stats(stats(20, {"127.0.0.1:1": 15}, errors=3), distributed=True)
    assert failed.endswith("15 compiled on build servers, 5 ran here (3 after a build server failed them)")


def test_statistics_that_do_not_parse_say_so():
    assert describe_stats("not json", distributed=True) == "sccache: no statistics"


def environ(tmp_path, text: str | None) -> dict[str, str]:
    if text is not None:
        (tmp_path / "client.conf").write_text(text)
    return {"SCCACHE_CONF": str(tmp_path / "client.conf"), "HOME": str(tmp_path)}


def test_a_dist_table_names_the_scheduler(tmp_path):
    found = read_distribution(environ(tmp_path, '[dist]\nscheduler_url = "http://10.0.0.5:10600"\n'))
    assert found == Distribution(tmp_path / "client.conf", "http://10.0.0.5:10600")


def test_no_dist_table_or_no_file_means_local(tmp_path):
    assert read_distribution(environ(tmp_path, '[cache.disk]\ndir = "/tmp/x"\n')) is None
    assert read_distribution({"HOME": str(tmp_path)}) is None  # no ~/.config/sccache/config
    (tmp_path / ".config" / "sccache").mkdir(parents=True)
    (tmp_path / ".config" / "sccache" / "config").write_text('[dist]\nscheduler_url = "https://sched.example"\n')
    assert read_distribution({"HOME": str(tmp_path)}).scheduler_url == "https://sched.example"


@pytest.mark.parametrize(("text", "problem", "fix"), [
    ("[dist\nscheduler_url = 1", "is not TOML", "fix the file"),
    ('[dist]\nscheduler_url = "10.0.0.5:10600"\n', "is not an address sccache can connect to", "http://HOST:PORT"),
    ('[dist]\nscheduler_url = "http://10.0.0.5"\n', "is not an address sccache can connect to", "http://HOST:PORT"),
    ('[dist]\nscheduler_url = "http://10.0.0.5:99999"\n', "is not an address", "http://HOST:PORT"),
    ("[dist]\nscheduler_url = 10600\n", "is not an address", "http://HOST:PORT"),
    (None, "SCCACHE_CONF is", "point SCCACHE_CONF at sccache's client configuration"),
])
def test_a_configuration_sccache_could_not_use_is_one_message(tmp_path, text, problem, fix):
    with pytest.raises(TvmFfiWheelError) as raised:
        read_distribution(environ(tmp_path, text))
    assert problem in raised.value.problem and fix in raised.value.fix
