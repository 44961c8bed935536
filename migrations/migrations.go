// Package migrations holds memgate's SQL schema, one directory of numbered
// goose migrations per database engine, embedded in the binary.
package migrations

import "embed"

// SQLite is the schema for the embedded SQLite store.
//
//go:embed sqlite/*.sql
var SQLite embed.FS

// Postgres is the same schema for Postgres, where several workers share
// one database.
//
//go:embed postgres/*.sql
var Postgres embed.FS
