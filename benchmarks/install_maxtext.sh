#!/usr/bin/env bash
# MaxText 0.2.4 beside the project, for benchmarks/maxtext_step.py and maxtext_memory.py:
# into its own folder (put it on PYTHONPATH for those two commands only), with just the
# modules its train step and train_compile import, so the project's jax, flax, optax and
# orbax stay the ones in use. MaxText 0.2.4 declares Python >= 3.12; on 3.11 only two
# PEP 695 `type` aliases in its mHC kernels stop the import, and they are rewritten as
# plain assignments in the installed copy.
#
#   bash benchmarks/install_maxtext.sh DIR    # then: PYTHONPATH=DIR python benchmarks/...
set -euo pipefail
target="${1:?usage: install_maxtext.sh DIR}"
python="${PYTHON:-python}"
"$python" -m pip install --quiet --no-deps --ignore-requires-python --target "$target" \
  maxtext==0.2.4 aqtp==0.9.0 drjax==0.2.1 einshape==1.0 fastapi==0.165.0 grain==0.2.18 \
  jaxtyping==0.3.11 ml-goodput-measurement==0.2.3 omegaconf==2.4.0 \
  opentelemetry-api==1.45.3 pathwaysutils==0.1.13 portpicker==1.6.0 qwix==0.1.8 \
  starlette==1.10.0 tiktoken==0.14.0 tokamax==0.0.12 typeguard==2.13.3 uvicorn==0.55.0 \
  wadler-lindig==0.1.8 google-api-core==2.44.0 google-auth==2.63.1 \
  google-cloud-appengine-logging==1.11.0 google-cloud-audit-log==0.6.3 \
  google-cloud-core==2.8.0 google-cloud-logging==3.17.0 google-cloud-monitoring==2.32.0 \
  google-cloud-storage==3.17.2 google-resumable-media==2.11.0 google-crc32c==1.9.0 \
  grpc-google-iam-v1==0.14.6 proto-plus==1.29.0 cryptography==51.0.1 cffi==2.1.1
if "$python" -c 'import sys; sys.exit(sys.version_info >= (3, 12))'; then
  sed -i 's/^type KernelContext = /KernelContext = /' "$target/maxtext/kernels/mhc/common.py"
  sed -i 's/^type Implementation = /Implementation = /' "$target/maxtext/kernels/mhc/api.py"
fi
PYTHONPATH="$target" "$python" -c \
  'import maxtext.trainers.pre_train.train, maxtext.trainers.pre_train.train_compile' \
  >/dev/null 2>&1 && echo "MaxText 0.2.4 importable with PYTHONPATH=$target"
