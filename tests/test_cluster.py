"""matdisco.cluster: our Dask workers keep glibc's malloc defaults (distributed's MALLOC_TRIM_THRESHOLD_ made torch
training 2.3x slower, see bench/cluster.py) and keep the rest of dask's worker environment."""

import os

import dask
import distributed  # noqa: F401  (registers its config)

from matdisco.cluster import TORCH_UNFRIENDLY_PRE_SPAWN_ENV, dask_client, worker_pre_spawn_env


def _env():
    return {k: os.environ.get(k) for k in ("MALLOC_TRIM_THRESHOLD_", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def test_pre_spawn_env_drops_only_the_malloc_trim_threshold():
    full = dask.config.get("distributed.nanny.pre-spawn-environ")
    assert "MALLOC_TRIM_THRESHOLD_" in full  # distributed sets it: this is what we undo
    ours = worker_pre_spawn_env()
    assert set(full) - set(ours) == set(TORCH_UNFRIENDLY_PRE_SPAWN_ENV) & set(full)
    assert all(ours[k] == full[k] for k in ours)


def test_local_workers_do_not_inherit_the_malloc_trim_threshold():
    before = os.environ.get("MALLOC_TRIM_THRESHOLD_")
    with dask_client(n_workers=2) as client:
        envs = list(client.run(_env).values())
    assert len(envs) == 2
    for env in envs:
        assert env["MALLOC_TRIM_THRESHOLD_"] is None and env["OMP_NUM_THREADS"] == "1" and env["MKL_NUM_THREADS"] == "1"
    assert os.environ.get("MALLOC_TRIM_THRESHOLD_") == before  # and the caller's process is not changed either


def test_workers_are_clean_even_after_a_default_dask_cluster_set_the_variable_here(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")  # what a default LocalCluster leaves in os.environ
    with dask_client(n_workers=1) as client:
        (env,) = client.run(_env).values()
    assert env["MALLOC_TRIM_THRESHOLD_"] is None and env["OMP_NUM_THREADS"] == "1"
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "65536"  # put back for the caller
