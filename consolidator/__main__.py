from consolidator.cli.main import main

raise SystemExit(main())
