"""The exit statuses of the project's commands, one meaning per number.

Each command's docstring says which of these it returns; tests and wrapper scripts
(``make cifar-table6``, ``benchmarks/``) compare against these names.
"""

EXIT_OK = 0
EXIT_FAILED = 1             # the command ran and found a problem (--strict, verify_records)
EXIT_ERROR = 2              # bad option, config, data file or busy output folder
EXIT_BUILD_FAILED = 3       # build_imagenet.py: a worker died or hung, the disk filled
EXIT_DIVERGED = 3           # train_*.py: the loss went NaN/inf (the health monitor stopped it)
EXIT_UNREADABLE = 3         # classify_image.py: an image could not be read
EXIT_BELOW_TARGET = 4       # test_*.py --require-rank1: rank-1 below the target
EXIT_NOT_SAVED = 5          # test_*.py: the result could not be saved with the checkpoint
EXIT_PARITY = 5             # export_onnx.py: ONNX output differs from MXNet's
EXIT_TIMEOUT = 124          # launch_distributed.py --timeout, as timeout(1) says it
EXIT_INTERRUPTED = 130      # SIGINT (128 + 2)
EXIT_TERMINATED = 143       # SIGTERM (128 + 15)
