from tvmffi_wheel.cli import main

raise SystemExit(main())
