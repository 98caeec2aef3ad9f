"""Run one `modaltune` command from a `script:` rule, for argument lists too long for a shell command.

Linux caps a single command-line string at 128 KiB, and Snakemake hands a rule's whole shell command to bash as one
string. A TCGA site's slide list, or the cohort's ~11,000 per-slide records, is longer than that, so the rules that
take them give the command's arguments as `params.argv` (a list) and run this script instead of `shell:`. The
command's output, errors and tracebacks go to the rule's log, as `> {log} 2>&1` does for shell rules.
"""

import contextlib
import sys
import traceback

from modaltune.cli import main

with open(snakemake.log[0], "w") as log, contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):  # noqa: F821
    try:
        status = main([str(arg) for arg in snakemake.params.argv])  # noqa: F821
    except SystemExit as exit_:  # as the interpreter treats it: None is success, a message is printed, then 1
        status = exit_.code
        if isinstance(status, str):
            print(status, file=sys.stderr)
            status = 1
    except Exception:
        traceback.print_exc()
        status = 1
sys.exit(status)
