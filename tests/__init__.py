"""phoneagent's test suite (tiers by directory; see conftest.py)."""

from pathlib import Path

# the checkout the suite runs from (artifacts, the benchmarks, SIP scenarios); the installed package
# knows no checkout
REPO_ROOT = Path(__file__).resolve().parents[1]
