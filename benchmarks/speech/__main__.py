import sys

from benchmarks.speech.run import main

sys.exit(main())
