package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// FerretDB 1.24's PostgreSQL backend hands PostgreSQL the equality part of a
// filter (`{room_id: "!r", stream: {$gt: 5}}` becomes a WHERE on room_id),
// where the SQLite backend hands SQLite nothing but `{_id: <string>}` and
// decodes and filters every document of the collection in Go. Atrium's
// queries are mostly equality on one or two fields plus a range, so with
// PostgreSQL a query reads the rows of one room or one user instead of the
// whole collection. That makes the cluster mode's figures (BENCHMARKS.md)
// measure Atrium rather than a full scan per query.
//
// FerretDB writes an equality as `_jsonb->'field' @> '"value"'`, and the
// btree indexes it creates on `(_jsonb->'field')` cannot serve `@>` (its
// unique `_id` index included), so PostgreSQL would still read every row of
// the table (fast, in C, but per query). ginIndexSQL installs an event
// trigger that gives every collection table a GIN index on `_jsonb->'_id'`
// and, for every index FerretDB creates, a GIN index on each of its fields:
// those serve `@>`. Queries are planned with their values
// (plan_cache_mode=force_custom_plan below), as FerretDB passes the field
// name as a parameter too and a generic plan could not match the index.
//
// postgresServer is a private PostgreSQL for one FerretDB: a fresh data
// directory, no TCP listener (a Unix socket in the data directory only, so
// concurrent test servers never race for a port), and torn down with it.

type postgresServer struct {
	cmd     *exec.Cmd
	dataDir string
	sockDir string
	exited  chan struct{}
}

// postgresBinDir finds the directory holding initdb, postgres, pg_isready
// and psql: $ATRIUM_POSTGRES_BIN, else the newest Debian layout
// /usr/lib/postgresql/<major>/bin, else the directory of initdb on PATH.
func postgresBinDir() (string, error) {
	if dir := os.Getenv("ATRIUM_POSTGRES_BIN"); dir != "" {
		return dir, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		mi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		mj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return mi > mj
	})
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, d := range dirs {
		if hasAll(d, "initdb", "postgres", "pg_isready", "psql") {
			return d, nil
		}
	}
	return "", errors.New("PostgreSQL not found (/usr/lib/postgresql/*/bin, initdb on PATH, or ATRIUM_POSTGRES_BIN); install the postgresql package")
}

func hasAll(dir string, names ...string) bool {
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			return false
		}
	}
	return true
}

// asUser is the account PostgreSQL runs as: itself, or `postgres` when this
// process is root (initdb and postgres refuse to run as root).
func asUser() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs a postgres account to run PostgreSQL as: %w", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// makeReachable gives `cred` its own directory `dir` and lets it pass
// through the directories above (test temp dirs are 0700 and root's).
func makeReachable(dir string, cred *syscall.Credential) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	if cred == nil {
		return nil
	}
	if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
		return err
	}
	for p := filepath.Dir(dir); p != "/" && p != "."; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, info.Mode().Perm()|0o011); err != nil {
				return err
			}
		}
	}
	return nil
}

func command(ctx context.Context, cred *syscall.Credential, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	// Pdeathsig: PostgreSQL goes down with this process even when it is killed outright.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGTERM, Setpgid: true}
	return cmd
}

// startPostgres runs initdb in `dir`/data and starts postgres on a socket in
// `dir`/run; it answers once postgres accepts connections.
func startPostgres(ctx context.Context, dir string, logger *slog.Logger) (*postgresServer, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := asUser()
	if err != nil {
		return nil, err
	}
	if err := makeReachable(dir, cred); err != nil {
		return nil, err
	}
	s := &postgresServer{dataDir: filepath.Join(dir, "data"), sockDir: filepath.Join(dir, "run"), exited: make(chan struct{})}
	if err := makeReachable(s.sockDir, cred); err != nil {
		return nil, err
	}
	initdb := command(ctx, cred, filepath.Join(bin, "initdb"), "-D", s.dataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	// Settings for a disposable test database. synchronous_commit=off: a
	// commit does not wait for its WAL flush (flushed within ~200 ms), like
	// MongoDB's default write concern, which journals every 100 ms; a crash
	// can lose the last acknowledged writes, never corrupt. fsync stays on.
	s.cmd = command(context.Background(), cred, filepath.Join(bin, "postgres"),
		"-D", s.dataDir,
		"-k", s.sockDir,
		"-c", "listen_addresses=",
		"-c", "synchronous_commit=off",
		"-c", "shared_buffers=64MB",
		"-c", "max_connections=200",
		"-c", "log_min_messages=warning",
		"-c", "plan_cache_mode=force_custom_plan",
	)
	s.cmd.Stdout = os.Stderr
	s.cmd.Stderr = os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	// Ready once the socket file exists and pg_isready agrees.
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-s.exited:
			return nil, errors.New("postgres exited during start-up (its log is above)")
		default:
		}
		check := exec.CommandContext(ctx, filepath.Join(bin, "pg_isready"), "-h", s.sockDir, "-U", "postgres", "-q")
		out, err := check.CombinedOutput()
		if err == nil {
			break
		}
		logger.Debug("ferretdb wrapper: pg_isready", "error", err, "output", string(out))
		if time.Now().After(deadline) {
			s.stop(logger)
			return nil, errors.New("postgres did not accept connections within 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	psql := exec.CommandContext(ctx, filepath.Join(bin, "psql"), "-h", s.sockDir, "-U", "postgres", "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", ginIndexSQL)
	if out, err := psql.CombinedOutput(); err != nil {
		s.stop(logger)
		return nil, fmt.Errorf("psql (GIN index trigger): %w: %s", err, out)
	}
	return s, nil
}

const ginIndexSQL = `
CREATE FUNCTION atrium_gin_index(tbl regclass, field text) RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
  EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %s USING gin ((_jsonb -> %L) jsonb_path_ops)',
    left(relname, 40) || '_' || left(md5(field), 8) || '_gin', tbl, field)
  FROM pg_class WHERE oid = tbl;
END $f$;

CREATE FUNCTION atrium_gin_indexes() RETURNS event_trigger LANGUAGE plpgsql AS $f$
DECLARE
  cmd record;
  def text;
  tbl regclass;
  field text;
BEGIN
  FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands() LOOP
    IF cmd.command_tag = 'CREATE TABLE' AND cmd.object_type = 'table'
       AND EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = cmd.objid AND attname = '_jsonb') THEN
      PERFORM atrium_gin_index(cmd.objid::regclass, '_id');
    ELSIF cmd.command_tag = 'CREATE INDEX' AND cmd.object_type = 'index' THEN
      def := pg_get_indexdef(cmd.objid);
      CONTINUE WHEN def NOT LIKE '%USING btree%';
      SELECT indrelid::regclass INTO tbl FROM pg_index WHERE indexrelid = cmd.objid;
      FOR field IN SELECT (regexp_matches(def, '_jsonb -> ''([^'']+)''::text', 'g'))[1] LOOP
        PERFORM atrium_gin_index(tbl, field);
      END LOOP;
    END IF;
  END LOOP;
END $f$;

CREATE EVENT TRIGGER atrium_gin ON ddl_command_end WHEN TAG IN ('CREATE TABLE', 'CREATE INDEX')
  EXECUTE FUNCTION atrium_gin_indexes();
`

// url is the pgx connection string: the `postgres` database over the socket.
func (s *postgresServer) url() string {
	q := url.Values{"host": {s.sockDir}, "user": {"postgres"}}
	return "postgres:///postgres?" + strings.ReplaceAll(q.Encode(), "%2F", "/")
}

// stop asks for a fast shutdown (SIGINT: roll back open transactions, then
// exit) and waits; SIGKILL after 10 s.
func (s *postgresServer) stop(logger *slog.Logger) {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		logger.Warn("ferretdb wrapper: postgres did not stop in 10 s; killing it")
		_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
		<-s.exited
	}
}
