import sys

from benchmarks.calllog.run import main

sys.exit(main())
