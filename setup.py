"""Distribution of tfx-transfer: a TFX pipeline that reuses pretrained layers."""

from setuptools import find_packages, setup

setup(
    name="tfx-transfer",
    version="0.1.0",
    description=(
        "TFX pipeline for transfer learning on image folders: ingest, resize, "
        "cache frozen layers, train a new head, evaluate, push to TF Serving."
    ),
    python_requires=">=3.10,<3.11",
    packages=find_packages(
        include=["pipeline", "pipeline.*", "components", "components.*", "kubeflow", "kubeflow.*"]
    ),
    package_data={
        "pipeline": ["configs/*.yaml"],
        "kubeflow": ["configs/*.yaml", "serving/*.yaml"],
    },
    # The exact versions come from requirements.lock (installed by scripts/setup.sh);
    # these ranges only say what the code imports.
    install_requires=[
        "tfx[kfp]==1.16.0",
        "tensorflow==2.16.2",
        "tensorflow-transform==1.16.0",
        "apache-beam[gcp]==2.61.0",
        "pillow",
        "pyyaml",
        "scikit-learn",
    ],
    entry_points={"console_scripts": ["tfx-transfer=pipeline.cli:main"]},
)
