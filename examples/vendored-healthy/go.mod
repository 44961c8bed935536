module example.com/vendored-healthy

go 1.22

require example.com/auditfmt v1.0.0

replace example.com/auditfmt => ./third_party/auditfmt
