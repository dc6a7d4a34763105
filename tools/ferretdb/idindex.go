package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	_ "modernc.org/sqlite" // the driver FerretDB's SQLite backend uses; registers "sqlite"
)

// FerretDB 1.24's SQLite backend looks documents up by _id with
//
//	WHERE _ferretdb_sjson->'$._id' = ?
//
// but creates its _id index on _ferretdb_sjson->"_id" (a double-quoted
// string, taken as a literal). SQLite matches index expressions by their
// form, so that index is never used and every lookup, update and delete by
// _id scans the whole table: ~0.5 s per lookup at 50,000 documents on the CI
// machine. keepIDIndexes adds an index on the expression the queries use to
// every collection table, checking the database files every interval, and
// stops with ctx. It only ever adds an index (non-unique: FerretDB's own
// index still enforces uniqueness and reports clashes as before).
func keepIDIndexes(ctx context.Context, dir string, interval time.Duration, logger *slog.Logger) {
	done := map[string]bool{} // file + "\x00" + table already indexed
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		files, _ := filepath.Glob(filepath.Join(dir, "*.sqlite"))
		for _, file := range files {
			if err := indexFile(ctx, file, done); err != nil && ctx.Err() == nil {
				logger.Warn("ferretdb wrapper: _id index", "file", file, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		}
	}
}

func indexFile(ctx context.Context, file string, done map[string]bool) error {
	// A database dropped and created again is a new file: its tables are looked at afresh.
	info, err := os.Stat(file)
	if err != nil {
		return nil
	}
	var inode uint64
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		inode = st.Ino
	}
	key := fmt.Sprintf("%s\x00%d", file, inode)
	db, err := sql.Open("sqlite", "file:"+file+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return err
	}
	defer db.Close()
	rows, err := db.QueryContext(ctx, `SELECT table_name FROM _ferretdb_collections`)
	if err != nil {
		// Not created yet by FerretDB.
		if strings.Contains(err.Error(), "no such table") {
			return nil
		}
		return err
	}
	var tables []string
	for rows.Next() {
		var t string
		if err := rows.Scan(&t); err != nil {
			rows.Close()
			return err
		}
		tables = append(tables, t)
	}
	rows.Close()
	for _, t := range tables {
		if done[key+"\x00"+t] {
			continue
		}
		q := fmt.Sprintf(`CREATE INDEX IF NOT EXISTS %q ON %q (_ferretdb_sjson->'$._id')`, t+"_atrium_id", t)
		if _, err := db.ExecContext(ctx, q); err != nil {
			// Dropped meanwhile: nothing to index.
			if strings.Contains(err.Error(), "no such table") {
				continue
			}
			return err
		}
		done[key+"\x00"+t] = true
	}
	return nil
}
