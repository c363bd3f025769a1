from tvmffi_wheel.commands.cli import main

raise SystemExit(main())
