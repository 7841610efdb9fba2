"""`python -m benchsr.cli ...` (torchrun and the tests start the CLI this way)."""
from benchsr.cli.main import main

main()
