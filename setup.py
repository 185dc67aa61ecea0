"""Only the optional C extension (the ingestion kernel); the rest is in pyproject.toml.

``optional=True``: where no C compiler is found the build warns and goes on, and the service
ingests on its Python path (billing_svc.native says why at start).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "billing_svc.native._usage_kernel",
            ["src/billing_svc/native/_usage_kernel.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
