import sys

from benchmarks.review.run import main

sys.exit(main())
