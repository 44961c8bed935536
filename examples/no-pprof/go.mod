module example.com/no-pprof

go 1.22
