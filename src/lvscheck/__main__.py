import sys

from lvscheck.cli import main

sys.exit(main())
