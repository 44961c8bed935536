module example.com/auditfmt

go 1.22
