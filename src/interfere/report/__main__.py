from interfere.report.run import main

main()
