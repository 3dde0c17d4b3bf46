"""What users run: flows built from :mod:`pipelines` steps, their config, runner and CLI.

- :mod:`flows.config` -- pydantic models of a YAML run config
- :mod:`flows.cluster` -- LocalCluster | existing scheduler | LocalCUDACluster
- :mod:`flows.registry` -- the steps (:mod:`flows.steps`) and flows there are
- :mod:`flows.sources` -- table inputs; :mod:`flows.io` -- atomic sinks; :mod:`flows.matrices` -- matrix sources
- :mod:`flows.table`, :mod:`flows.compare` -- the two flows
- :mod:`flows.runner` -- :func:`run`, used by the CLI (:mod:`flows.cli`) and notebooks
- :mod:`flows.report` -- what a run did
"""

__version__ = "0.1.0"


def run(*args, **kwargs):  # noqa: D103 - documented in flows.runner.run
    from flows.runner import run as _run

    return _run(*args, **kwargs)


run.__doc__ = "Run a flow; see :func:`flows.runner.run`."
__all__ = ["run", "__version__"]
