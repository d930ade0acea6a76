# 072_prepared.pl -- protocol-level prepared statements in transaction mode
# (max_prepared_statements): real drivers with more clients than backends,
# and the hostile cases (unknown names, duplicates, eviction, errors in
# pipelines, disconnects, backends that die between Parse and Bind).

use strict;
use warnings;

use File::Temp ();
use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c071');
$node->start;
my ($rc, $out, $err) = $node->pgbench('-i', '-s', '1', '-q');
is($rc, 0, 'pgbench -i') or diag($err);
my $cport = $node->port;
my $dbs = { postgres => "host=127.0.0.1 port=$cport dbname=postgres" };
my @users = ([ $node->superuser, $node->superuser_password ]);

sub proxy_with
{
	my ($name, %set) = @_;
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => $name, databases => $dbs,
		settings => { pool_mode => 'transaction', default_pool_size => 3,
			max_client_conn => 200, auth_type => 'trust', %set },
		userlist => \@users);
	$p->start;
	return $p;
}

# ---- wire helpers ----
sub P { my ($n, $q) = @_; frontend_message('P', "$n\0$q\0" . pack('n', 0)) }
sub B { my ($n) = @_; frontend_message('B', "\0$n\0" . pack('n n n', 0, 0, 0)) }
sub E { frontend_message('E', "\0" . pack('N', 0)) }
sub Cs { my ($n) = @_; frontend_message('C', "S$n\0") }
sub Ds { my ($n) = @_; frontend_message('D', "S$n\0") }
sub S { msg_sync() }

sub wconn
{
	my ($p) = @_;
	my $s = raw_connect($p->host, $p->port);
	my $o = password_login($s, $node->superuser, $node->superuser_password);
	die "login failed: " . describe_outcome($o) unless $o->{ready};
	return $s;
}

# Send <bytes>, read <n> ReadyForQuery; returns "types" and the SQLSTATEs.
sub xchg
{
	my ($s, $bytes, $n) = @_;
	raw_send($s, $bytes);
	my $r = read_until_n_ready($s, $n // 1, 10);
	my @codes = map { $_->{C} } @{ $r->{errors} };
	return (join(' ', @{ $r->{types} }), join(',', @codes));
}

# A client closed by pgslab: "SQLSTATE message" of its FATAL error, and
# whether the connection then ended.
sub fatal_of
{
	my ($s, $bytes) = @_;
	raw_send($s, $bytes);
	my $r = read_until_n_ready($s, 1, 10);
	my ($e) = grep { ($_->{S} // '') eq 'FATAL' } @{ $r->{errors} };
	return ($e ? "$e->{C} $e->{M}" : 'no FATAL: ' . join(' ', @{ $r->{types} }),
		$r->{types}[-1] eq 'EOF');
}

# Column 1 of each DataRow read up to <n> ReadyForQuery.
sub rows_of
{
	my ($s, $bytes, $n) = @_;
	raw_send($s, $bytes);
	my (@v, $ready);
	while (($ready // 0) < ($n // 1)) {
		my ($t, $b) = read_msg($s, 10);
		last if $t eq 'EOF' || $t eq 'TIMEOUT' || $t eq 'BADLEN';
		$ready++ if $t eq 'Z';
		if ($t eq 'D') {
			my ($nc, $l) = unpack('n l>', $b);
			push @v, $l < 0 ? undef : substr($b, 6, $l);
		}
		push @v, 'E:' . parse_fields($b)->{C} if $t eq 'E';
	}
	return join(',', map { $_ // 'NULL' } @v);
}

sub server_prepared
{
	my ($p) = @_;
	return [ map { $_->{prepared_statements} } grep { $_->{database} eq 'postgres' }
		    $p->admin_hash('SHOW SERVERS') ];
}

sub wait_gone
{
	my ($p, $pid) = @_;
	for (1 .. 100) {
		return 1 unless grep { $_->{remote_pid} eq $pid } $p->admin_hash('SHOW SERVERS');
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

sub wait_idle
{
	my ($p) = @_;
	for (1 .. 100) {
		my ($pl) = grep { $_->{database} eq 'postgres' } $p->admin_hash('SHOW POOLS');
		return 1 if $pl && $pl->{sv_active} == 0 && $pl->{cl_waiting} == 0;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

# ---- pgbench -M prepared, more clients than backends ----
{
	my $p = proxy_with('p071_bench');
	my ($brc, $bout, $berr) = $p->pgbench('-n', '-S', '-M', 'prepared', '-c', '12', '-j', '2',
		'-t', '300', { timeout => 120 });
	ok($brc == 0 && $bout =~ /number of failed transactions: 0 /,
		'pgbench -S -M prepared, 12 clients on 3 backends: no failure') or diag("$berr\n$bout");
	# TPC-B holds a backend per transaction; pgbench prepares synchronously,
	# so each client gets its own thread (a shared one would wait on itself)
	($brc, $bout, $berr) = $p->pgbench('-n', '-M', 'prepared', '-c', '8', '-j', '8',
		'-t', '60', { timeout => 120 });
	ok($brc == 0 && $bout =~ /number of failed transactions: 0 /,
		'pgbench TPC-B -M prepared, 8 clients on 3 backends: no failure') or diag("$berr\n$bout");
	my ($st) = grep { $_->{database} eq 'postgres' } $p->admin_hash('SHOW STATS');
	ok($st->{total_bind_count} > 3000 && $st->{total_server_parse_count} > 0
		    && $st->{total_server_parse_count} < $st->{total_bind_count} / 10,
		"SHOW STATS: $st->{total_bind_count} binds, $st->{total_client_parse_count} client parses, "
		    . "$st->{total_server_parse_count} server parses");
	my @ps = $p->admin_hash('SHOW PREPARED_STATEMENTS');
	ok(@ps == 7 && !grep({ $_->{servers} < 1 || $_->{servers} > 3 || $_->{name} !~ /^PGSLAB_\d+$/ } @ps)
		    && grep({ $_->{statement} =~ /^UPDATE pgbench_accounts/ } @ps),
		'SHOW PREPARED_STATEMENTS: the 7 distinct statements of -S and TPC-B')
	    or diag(join "\n", map { "$_->{name} $_->{servers} $_->{statement}" } @ps);
	my $sp = server_prepared($p);
	ok(@$sp && !grep({ $_ < 1 || $_ > 8 } @$sp),
		'SHOW SERVERS prepared_statements: ' . join(',', @$sp));
	is($p->stop, 0, 'bench proxy exits cleanly');
}

# ---- drivers: psycopg 3 (prepare_threshold=0) and asyncpg (its default cache) ----
my $host = '127.0.0.1';
{
	my $p = proxy_with('p071_drivers');
	my $port = $p->port;
	my ($user, $pw) = ($node->superuser, $node->superuser_password);
	my $psy = <<'PY';
import sys, threading, psycopg
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
errors, done = [], []
def work(k):
    try:
        with psycopg.connect(host=host, port=port, user=user, password=pw, dbname='postgres',
                             prepare_threshold=0, autocommit=True) as c:
            for i in range(40):
                v = c.execute("SELECT %s::int * 2 + %s::int", (i, k)).fetchone()[0]
                assert v == i * 2 + k, (v, i, k)
                with c.transaction():
                    n = c.execute("SELECT count(*) FROM pgbench_branches WHERE bid = %s", (1,)).fetchone()[0]
                    assert n == 1, n
                    t = c.execute("SELECT %s::text || 'x'", (str(k),)).fetchone()[0]
                    assert t == str(k) + 'x', t
            done.append(k)
    except Exception as e:
        errors.append(repr(e))
ts = [threading.Thread(target=work, args=(k,)) for k in range(20)]
[t.start() for t in ts]; [t.join(120) for t in ts]
print("ok=%d errors=%d %s" % (len(done), len(errors), errors[:3]))
PY
	my ($prc, $pout, $perr) = PgSlab::Test::Cluster::run_command(
		[ '/usr/bin/python3', '-c', $psy, $host, $port, $user, $pw ], timeout => 180);
	is($pout, 'ok=20 errors=0 []', 'psycopg 3, prepare_threshold=0: 20 threads on 3 backends')
	    or diag($perr);

	my $apg = <<'PY';
import sys, asyncio, asyncpg
host, port, user, pw = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
async def work(k):
    c = await asyncpg.connect(host=host, port=port, user=user, password=pw, database='postgres')
    try:
        for i in range(40):
            v = await c.fetchval("SELECT $1::int * 2 + $2::int", i, k)
            assert v == i * 2 + k, (v, i, k)
            async with c.transaction():
                r = await c.fetchrow("SELECT bid, $1::text AS t FROM pgbench_branches WHERE bid = $2", str(k), 1)
                assert r['bid'] == 1 and r['t'] == str(k), r
            s = await c.prepare("SELECT $1::int + 100")
            assert await s.fetchval(i) == i + 100
        return 1
    finally:
        await c.close()
async def main():
    rs = await asyncio.gather(*[work(k) for k in range(20)], return_exceptions=True)
    errs = [repr(r) for r in rs if r != 1]
    print("ok=%d errors=%d %s" % (len(rs) - len(errs), len(errs), errs[:3]))
asyncio.run(asyncio.wait_for(main(), 150))
PY
	($prc, $pout, $perr) = PgSlab::Test::Cluster::run_command(
		[ '/usr/bin/python3', '-c', $apg, $host, $port, $user, $pw ], timeout => 180);
	is($pout, 'ok=20 errors=0 []', 'asyncpg, default statement cache: 20 tasks on 3 backends')
	    or diag($perr);
	ok(wait_idle($p), 'drivers gone: pool idle');
	is($p->stop, 0, 'drivers proxy exits cleanly');
}

# ---- the protocol cases, pool of 1 so every client meets the same backend ----
{
	my $p = proxy_with('p071_wire', default_pool_size => 1);
	my $a = wconn($p);
	my $b = wconn($p);
	my ($t, $c);

	($t, $c) = xchg($a, Cs('nosuch') . S());
	is($t, '3 Z', 'Close of an unknown name: CloseComplete, as PostgreSQL');
	# a Bind or Describe of a name the client never prepared closes it, as
	# PgBouncer does (never passed on to whatever the backend holds)
	for my $m ([ 'Bind', B('nosuch') . E() . S() ], [ 'Describe', Ds('nosuch') . S() ]) {
		my $x = wconn($p);
		my ($f, $eof) = fatal_of($x, $m->[1]);
		is($f, '08P01 prepared statement did not exist', "$m->[0] of an unknown name: PgBouncer's FATAL");
		ok($eof, "$m->[0] of an unknown name: the client is closed");
		close $x;
	}
	ok($p->wait_for_log(qr/prepared statement 'nosuch' not found/),
		"the log names the statement (PgBouncer's words)");
	ok($p->wait_for_log(qr/closing because: prepared statement did not exist/), 'and the reason');

	is(rows_of($a, P('s1', 'SELECT 1') . B('s1') . E() . S()), '1', 'Parse, Bind, Execute in one pipeline');
	($t, $c) = xchg($a, P('s1', 'SELECT 2') . S());
	is($c, '42P05', 'duplicate Parse of a name: 42P05');
	ok($p->wait_for_log(qr/prepared statement 's1' was already prepared/),
		"a duplicate Parse is logged in PgBouncer's words");
	is(rows_of($a, B('s1') . E() . S()), '1', 'the first statement survives the duplicate');
	is(rows_of($b, P('s1', 'SELECT 1') . B('s1') . E() . S()), '1',
		'another client, same name and text: its own statement (backend already had it)');
	is(rows_of($b, Cs('s1') . S() . P('s1', 'SELECT 3') . B('s1') . E() . S(), 2), '3',
		'Close and re-Parse with another text');
	is(rows_of($a, B('s1') . E() . S()), '1', 'the other client keeps its own s1');
	($t, $c) = xchg($a, Ds('s1') . S());
	is($t, 't T Z', 'Describe of a named statement: ParameterDescription, RowDescription');

	# unnamed statements pass through untouched
	is(rows_of($a, ext_query('SELECT 42') . S()), '42', 'unnamed statement');

	# an error in a pipeline before an injected Parse: the Parse is skipped,
	# the client sees the same stream as from PostgreSQL, and the next Bind re-injects
	is(rows_of($a, P('s2', 'SELECT 1/0') . S()), '', 'parse s2');
	my $pid0 = rows_of($a, P('pid', 'SELECT pg_backend_pid()') . B('pid') . E() . S());
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid0)");
	ok(wait_gone($p, $pid0), 'backend terminated between Parse and Bind');
	is(rows_of($a, B('s1') . E() . S()), '1',
		'a backend that lacks the statement gets it prepared first (injected Parse)');
	my $pid1 = rows_of($a, B('pid') . E() . S());
	isnt($pid1, $pid0, 'it was a new backend');
	$node->safe_psql('postgres', "SELECT pg_terminate_backend($pid1)");
	ok(wait_gone($p, $pid1), 'and that one terminated too');
	is(rows_of($a, B('s2') . E() . B('s1') . E() . S() . B('s1') . E() . S(), 2),
		'E:22012,1',
		'error mid-pipeline skips the injected Parse; the Bind after Sync still works');

	# SQL-level PREPARE/EXECUTE: refused, never run on a random backend
	($t, $c) = xchg($a, frontend_message('Q', "PREPARE q1 AS SELECT 1\0"));
	is($c, '0A000', 'SQL PREPARE refused in transaction mode');
	($t, $c) = xchg($a, frontend_message('Q', "  execute q1\0"));
	is($c, '0A000', 'SQL EXECUTE refused');
	($t, $c) = xchg($a, frontend_message('Q', "DEALLOCATE s1; SELECT 1\0"));
	is($c, '0A000', 'SQL DEALLOCATE inside a longer text refused (a name alone: below)');
	is(rows_of($a, frontend_message('Q', "SELECT 'prepare'\0")), 'prepare', 'other SQL passes');

	# DEALLOCATE ALL / DISCARD ALL keep both maps in step
	($t, $c) = xchg($a, frontend_message('Q', "DEALLOCATE ALL\0"));
	is($c, '', 'DEALLOCATE ALL runs');
	is(rows_of($a, P('s1', 'SELECT 5') . B('s1') . E() . S()), '5',
		'after DEALLOCATE ALL the name is free: re-Parse');
	is(rows_of($b, B('s1') . E() . S()), '3', 'the other client is untouched (re-injected)');
	($t, $c) = xchg($a, frontend_message('Q', "DEALLOCATE ALL\0"));
	my ($fat, $eof) = fatal_of($a, B('s1') . E() . S());
	ok($fat eq '08P01 prepared statement did not exist' && $eof,
		"after DEALLOCATE ALL a Bind of the name closes the client, as PgBouncer: $fat");
	$a = wconn($p);
	is(rows_of($a, P('s1', 'SELECT 5') . B('s1') . E() . S()), '5', 'a new client parses s1');
	($t, $c) = xchg($b, frontend_message('Q', "DISCARD ALL\0"));
	is($c, '', 'DISCARD ALL runs');
	($fat, $eof) = fatal_of($b, Ds('s1') . S());
	ok($fat eq '08P01 prepared statement did not exist' && $eof,
		"after DISCARD ALL a Describe of the name closes the client: $fat");
	$b = wconn($p);
	is(rows_of($a, B('s1') . E() . S()), '5', 'the other client still works');
	is(rows_of($b, frontend_message('Q', "SELECT count(*) FROM pg_prepared_statements\0")),
		join(',', @{ server_prepared($p) }),
		'after both: the backend holds exactly what pgslab thinks it holds');

	# a Parse that failed keeps its name, as PgBouncer (psycopg 3 goes on to
	# Bind a statement whose Parse a pipeline error skipped): a Bind of it
	# prepares the text then, and a new Parse of the name replaces it (no
	# 42P05: PostgreSQL never had it)
	my $g = wconn($p);
	($t, $c) = xchg($g, P('ft', 'SELECT a FROM prep_later') . S());
	is($c, '42P01', 'Parse of a missing table fails');
	$node->safe_psql('postgres', 'CREATE TABLE prep_later (a int); INSERT INTO prep_later VALUES (7)');
	is(rows_of($g, B('ft') . E() . S()), '7', 'a Bind of the name whose Parse failed prepares its text');
	is(rows_of($g, P('ft', 'SELECT 8') . B('ft') . E() . S()), '8', 'a new Parse of that name replaces it');
	($t, $c) = xchg($g, P('ft', 'SELECT 9') . S());
	is($c, '42P05', 'a Parse that succeeded makes the name taken');
	is(rows_of($g, P('q1', 'SELECT 1') . B('q1') . E() . P('q2', 'SELECT a FROM prep_nosuch') . B('q2') . E()
		. P('q3', 'SELECT 3') . B('q3') . E() . S()), '1,E:42P01', 'a pipeline with a failing Parse');
	is(rows_of($g, B('q1') . E() . S() . B('q3') . E() . S(), 2), '1,3',
		'its skipped Parse\'s name: the Bind prepares it (psycopg 3 binds it)');
	is(rows_of($g, P('q2', 'SELECT 2') . B('q2') . E() . S()), '2', 'the failed one parsed again');
	$node->safe_psql('postgres', 'DROP TABLE prep_later');
	close $g;

	# a 1 MB query text
	my $big = 'SELECT 7 /*' . ('x' x 1_000_000) . '*/';
	is(rows_of($a, P('big', $big) . B('big') . E() . S()), '7', '1 MB query text');
	is(rows_of($b, P('big', $big) . S() . B('big') . E() . S(), 2), '7', 'shared by another client');

	# a named Bind larger than pgslab holds whole (3 MB parameter): its head
	# is rewritten from the first bytes and the rest streams through
	my $bigp = 'y' x 3_000_000;
	my $bind = frontend_message('B', "\0lb\0" . pack('n n N', 0, 1, length $bigp) . $bigp . pack('n', 0));
	is(rows_of($a, P('lb', 'SELECT length($1::text)') . S() . $bind . E() . S(), 2), '3000000',
		'3 MB named Bind streamed (backend holds the statement)');
	($t, $c) = xchg($b, frontend_message('Q', "DEALLOCATE ALL\0"));
	is(rows_of($a, $bind . E() . S()), '3000000', '3 MB named Bind after an injected Parse');
	is(rows_of($a, $bind . E() . $bind . E() . S() . $bind . E() . S(), 2), '3000000,3000000,3000000',
		'three of them pipelined');

	# ... and with only its 5-byte header in the first read (names arrive later)
	raw_send($a, substr($bind, 0, 5));
	select(undef, undef, undef, 0.3);
	is(rows_of($a, substr($bind, 5) . E() . S()), '3000000', '3 MB named Bind whose names come in a later read');
	my $ubind = frontend_message('B', "\0\0" . pack('n n N', 0, 1, length $bigp) . $bigp . pack('n', 0));
	raw_send($a, P('', 'SELECT length($1::text)') . substr($ubind, 0, 6));
	select(undef, undef, undef, 0.3);
	is(rows_of($a, substr($ubind, 6) . E() . S()), '3000000', '3 MB unnamed Bind, header first: untouched');

	# a client that leaves right after Parse, before Sync
	my $d = wconn($p);
	raw_send($d, P('gone', 'SELECT 8'));
	close $d;
	my $e = wconn($p);
	raw_send($e, P('gone2', 'SELECT 9') . B('gone2'));
	raw_reset($e);
	ok(wait_idle($p), 'clients that left mid-pipeline: pool idle');
	is(rows_of($a, P('gone', 'SELECT 10') . B('gone') . E() . S()), '10',
		'their names never reached anyone else');
	is(rows_of($b, frontend_message('Q', "SELECT count(*) FROM pg_prepared_statements\0")),
		join(',', @{ server_prepared($p) }),
		'the backend holds exactly the statements pgslab thinks it holds');
	# a named Parse cut in the middle: that client's backend cannot be reused
	my $f = wconn($p);
	my $half = P('cut', 'SELECT 12345');
	raw_send($f, substr($half, 0, 12));
	close $f;
	ok(wait_idle($p), 'a client that left inside a Parse: pool idle again');

	# a long pipeline: 3000 named Bind/Execute pairs in one write (~100 KB,
	# many buffers)
	is(rows_of($a, P('l1', 'SELECT 1') . P('l2', 'SELECT 2') . S()), '', 'parse l1, l2');
	my $pipe = join '', map { B('l' . (1 + $_ % 2)) . E() } 1 .. 3000;
	my $want = join ',', map { 1 + $_ % 2 } 1 .. 3000;
	is(rows_of($a, $pipe . S()), $want, 'a 3000-message named pipeline streams through in order');

	($t, $c) = xchg($a, frontend_message('Q', "SELECT 1\0"));
	is($c, '', 'still working');
	close $a;
	close $b;
	ok(wait_idle($p), 'pool idle at the end');
	my ($sl) = grep { $_->{name} eq 'prep_client_name' } $p->admin_hash('SHOW SLABS');
	is($sl->{active_objs}, 0, 'no client name left once the clients are gone');
	is($p->stop, 0, 'wire proxy exits cleanly');
}

# ---- eviction: max_prepared_statements = 2 ----
{
	my $p = proxy_with('p071_evict', default_pool_size => 1, max_prepared_statements => 2);
	my $a = wconn($p);
	my $b = wconn($p);
	my $all = '';
	$all .= P("e$_", "SELECT $_") . S() for 1 .. 5;
	my ($t) = xchg($a, $all, 5);
	is($t, '1 Z 1 Z 1 Z 1 Z 1 Z', 'five statements parsed with max 2');
	my @order = (1, 2, 3, 4, 5, 3, 1, 5, 2, 4, 4, 1);
	my $seq = join '', map { B("e$_") . E() } @order;
	is(rows_of($a, $seq . S()), join(',', @order), 'all usable in one pipeline: evicted ones re-prepared');
	my @many = map { 1 + ($_ * 7) % 5 } 1 .. 2000;
	is(rows_of($a, join('', map { B("e$_") . E() } @many) . S()), join(',', @many),
		'2000 pipelined Binds cycling through 5 statements on a backend that keeps 2');
	is(rows_of($b, frontend_message('Q', "SELECT count(*) FROM pg_prepared_statements\0")), '2',
		'the backend holds only 2');
	is(join(',', @{ server_prepared($p) }), '2', 'SHOW SERVERS says 2');
	is(rows_of($b, P('e1', 'SELECT 11') . B('e1') . E() . B('e1') . E() . S()), '11,11',
		'another client, same name, another text');
	is(rows_of($a, join('', map { B("e$_") . E() } 5, 4, 3, 2, 1) . S()), '5,4,3,2,1',
		'the first client still sees its own e1');
	close $a;
	close $b;
	ok(wait_idle($p), 'eviction proxy idle');
	is($p->stop, 0, 'eviction proxy exits cleanly');
}

# ---- an eviction Close skipped after an error: the backend keeps the
# statement (found by the differential test: the next Parse of its text got
# 42P05 "PGSLAB_1 already exists"); same replies as PostgreSQL directly ----
{
	my $p = proxy_with('p071_skip', default_pool_size => 1, max_prepared_statements => 2);
	my @conn = (wconn($p), undef);
	$conn[1] = raw_connect('127.0.0.1', $node->port);
	password_login($conn[1], $node->superuser, $node->superuser_password)->{ready}
	    or BAIL_OUT('direct login');
	my @got;
	for my $s (@conn) {
		my $r = '';
		for my $txn (0, 1) {
			$r .= (xchg($s, frontend_message('Q', "BEGIN\0")))[0] . ' | ' if $txn;
			$r .= (xchg($s, P("a$txn", "SELECT 1 + $txn") . S() . P("b$txn", "SELECT 2 + $txn") . S(), 2))[0];
			# a, b held (max 2); the error makes the backend skip the Close
			# evicting a and the Parse of c; after the Sync, a's text again
			my ($t, $c) = xchg($s, P('', 'SELECT 1/0') . B('') . E() . P("c$txn", "SELECT 3 + $txn")
				. S() . P("d$txn", "SELECT 1 + $txn") . B("d$txn") . E() . B("b$txn") . E() . S(), 2);
			$r .= " | $t $c";
			$r .= ' | ' . (xchg($s, frontend_message('Q', $txn ? "ROLLBACK\0" : "SELECT 1\0")))[0];
		}
		push @got, $r;
	}
	is($got[0], $got[1], 'skipped eviction Close, outside and inside a transaction: as PostgreSQL');
	is(rows_of($conn[0], B('d0') . E() . B('b0') . E() . S()), '1,2', 'both statements still usable');
	close $_ for @conn;
	ok(wait_idle($p), 'skip proxy idle');
	is($p->stop, 0, 'skip proxy exits cleanly');
}

# ---- standard_conforming_strings: a statement re-prepared under another
# value is that value's statement, never handed to a client of the first
# (the differential test found 'a\b' read as a backspace by a fresh client) ----
{
	my $p = proxy_with('p071_scs', default_pool_size => 1);
	my ($a, $c, $d) = (wconn($p), wconn($p), wconn($p));
	my $q = q{SELECT 'a\b'};
	is(rows_of($a, P('s1', $q) . B('s1') . E() . S()), 'a\b', 'parsed with standard_conforming_strings on');
	xchg($c, frontend_message('Q', "DEALLOCATE ALL\0"));	# the backend drops it
	xchg($a, frontend_message('Q', "SET standard_conforming_strings = off\0"));
	is(rows_of($a, B('s1') . E() . S()), "a\b",
		're-prepared after its client turned it off: read with off (README: a limit)');
	xchg($a, frontend_message('Q', "SET standard_conforming_strings = on\0"));
	is(rows_of($d, P('s2', $q) . B('s2') . E() . S()), 'a\b',
		'another client with it on gets the text as it sent it');
	is(rows_of($d, frontend_message('Q', "SELECT count(*) FROM pg_prepared_statements\0")), '2',
		'the backend holds the text twice, once per value');
	my $r = '';
	$r .= rows_of($a, B('s1') . E() . S()) . ',' . rows_of($d, B('s2') . E() . S());
	is($r, 'a\b,a\b', 'with it on again, the first client is back on the text as it was parsed');
	close $_ for $a, $c, $d;
	ok(wait_idle($p), 'scs proxy idle');
	is($p->stop, 0, 'scs proxy exits cleanly');
}

# ---- the registry's figures: SHOW PREPARED_STATS and /metrics, exact ----
{
	my $mport = PgSlab::Test::Cluster::get_free_port();
	my $p = proxy_with('p071_figs', default_pool_size => 1, max_prepared_statements => 1,
		metrics_listen => "127.0.0.1:$mport");
	my $a = wconn($p);
	my $b = wconn($p);
	my ($t, $c);
	# registry: miss; backend lacks it: the client's Parse goes (server miss);
	# the Bind finds it on the backend (server hit)
	is(rows_of($a, P('f1', 'SELECT 1') . B('f1') . E() . S()), '1', 'figures: a parses and binds f1');
	# same text from b: registry hit; backend holds it: stand-in Close and Bind (2 server hits)
	is(rows_of($b, P('g1', 'SELECT 1') . B('g1') . E() . S()), '1', 'figures: b, same text');
	# a new text: registry miss; max 1: statement 1 evicted, Parse sent (server miss)
	($t, $c) = xchg($a, P('f2', 'SELECT 2') . S());
	is($t, '1 Z', 'figures: a parses f2');
	# f1 was evicted: evict 2, inject 1 (server miss)
	is(rows_of($a, B('f1') . E() . S()), '1', 'figures: f1 re-prepared by an injected Parse');
	# g1 is statement 1, on the backend: server hit
	is(rows_of($b, B('g1') . E() . S()), '1', 'figures: b binds g1');
	# a duplicate name: counted as a Parse only
	($t, $c) = xchg($a, P('f1', 'SELECT 9') . S());
	is($c, '42P05', 'figures: duplicate Parse');
	my @r = $p->admin_hash('SHOW PREPARED_STATS');
	my %want = (statements => 2, client_names => 3, server_statements => 1, parses => 4,
		binds => 4, hits => 1, misses => 2, hit_rate => '0.3333', server_hits => 4,
		server_misses => 3, server_hit_rate => '0.5714', injected_parses => 1, evictions => 2);
	is(scalar(@r), 1, 'SHOW PREPARED_STATS: one row');
	is_deeply({ map { $_ => $r[0]{$_} } keys %want }, \%want,
		'SHOW PREPARED_STATS: exact hits, misses, server hits, injected Parses, evictions');
	my @ps = $p->admin_hash('SHOW PREPARED_STATEMENTS');
	my $sum = 0;
	$sum += $_->{bytes} for @ps;
	ok($r[0]{bytes} > $sum, "SHOW PREPARED_STATS bytes ($r[0]{bytes}) cover the statements' ($sum) and more");
	my $body = $p->metrics;
	my %prom = (statements => 2, client_names => 3, server_statements => 1,
		parses_total => 4, binds_total => 4, hits_total => 1, misses_total => 2,
		server_hits_total => 4, server_misses_total => 3, injected_parses_total => 1,
		evictions_total => 2, bytes => $r[0]{bytes});
	my %got = map { my ($v) = $body =~ /^pgslab_prepared_\Q$_\E (\d+)$/m; ($_ => $v) } keys %prom;
	is_deeply(\%got, \%prom, '/metrics pgslab_prepared_*: the same figures');
	close $a;
	close $b;
	ok(wait_idle($p), 'figures proxy idle');
	is($p->stop, 0, 'figures proxy exits cleanly');
}

# ---- SQL DEALLOCATE of a protocol-level name (DBD::Pg frees a statement
# handle so): differential, the same sequences straight to PostgreSQL and
# through pgslab (pool of 1, so the statements meet the same backend) give
# the same replies, tags and SQLSTATEs ----
{
	my $p = proxy_with('p071_dealloc', default_pool_size => 1);
	my @conn = (wconn($p), raw_connect('127.0.0.1', $node->port));
	password_login($conn[1], $node->superuser, $node->superuser_password)->{ready}
	    or BAIL_OUT('direct login');
	my $Q = sub { frontend_message('Q', "$_[0]\0") };
	# every reply: its type, with the tag of a CommandComplete, the SQLSTATE
	# and message of an error, the value of a row, the status of a ReadyForQuery
	my $trace = sub {
		my ($s, $bytes, $n) = @_;
		raw_send($s, $bytes);
		my (@t, $ready);
		while (($ready // 0) < ($n // 1)) {
			my ($ty, $b) = read_msg($s, 10);
			push @t, $ty;
			last if $ty eq 'EOF' || $ty eq 'TIMEOUT' || $ty eq 'BADLEN';
			$ready++ if $ty eq 'Z';
			if ($ty eq 'C') { $t[-1] .= '(' . unpack('Z*', $b) . ')' }
			if ($ty eq 'E') { my $f = parse_fields($b); $t[-1] .= "($f->{C} $f->{M})" }
			if ($ty eq 'D') { my ($nc, $l) = unpack('n l>', $b); $t[-1] .= '(' . substr($b, 6, $l) . ')' }
			if ($ty eq 'Z') { $t[-1] .= "($b)" }
		}
		return join(' ', @t);
	};
	my @steps = (
		[ 'parse d1', P('d1', 'SELECT 1') . S() ],
		[ 'DEALLOCATE d1', $Q->('DEALLOCATE d1') ],
		[ 'its name is free again', P('d1', 'SELECT 2') . B('d1') . E() . S() ],
		[ 'DEALLOCATE PREPARE, comments, semicolon', $Q->("/* x */ DEALLOCATE PREPARE d1 -- y\n;  ") ],
		[ "a name not there: 26000 in the client's words", $Q->('DEALLOCATE d1') ],
		[ 'quoted and folded names', P('Mixed "Q"', 'SELECT 3') . P('lower1', 'SELECT 4') . S()
			. $Q->('DEALLOCATE "Mixed ""Q"""') . $Q->('DEALLOCATE LOWER1'), 3 ],
		[ 'inside a transaction', $Q->('BEGIN') . P('t1', 'SELECT 5') . P('t2', 'SELECT 6') . S()
			. $Q->('DEALLOCATE t1') . $Q->('SELECT 1/0') . $Q->('DEALLOCATE t2') . $Q->('ROLLBACK'), 6 ],
		[ 'a failed transaction kept t2, t1 is gone', B('t2') . E() . S() . P('t1', 'SELECT 7') . S(), 2 ],
		[ 'a Parse pipelined behind the DEALLOCATE', $Q->('DEALLOCATE t1') . P('t1', 'SELECT 8')
			. B('t1') . E() . S(), 2 ],
		[ "a failed Parse's name: 26000", P('f1', 'SELEC 1') . S() . $Q->('DEALLOCATE f1'), 2 ],
	);
	for my $st (@steps) {
		my ($what, $bytes, $n) = @$st;
		my @r = map { $trace->($_, $bytes, $n) } @conn;
		is($r[0], $r[1], "SQL DEALLOCATE, $what: as PostgreSQL") or diag("direct: $r[1]");
	}
	my ($t, $c) = xchg($conn[0], $Q->('DEALLOCATE "PGSLAB_1"'));
	is($c, '0A000', "SQL DEALLOCATE of one of pgslab's own names refused");
	is(rows_of($conn[0], $Q->("SELECT count(*) FROM pg_prepared_statements WHERE name = 'PGSLAB_0'")),
		'0', 'no PGSLAB_0 left on the backend');
	is(rows_of($conn[0], $Q->('SELECT count(*) FROM pg_prepared_statements')),
		join(',', @{ server_prepared($p) }), 'the backend holds what pgslab thinks it holds');

	# DBD::Pg frees a statement handle inside a transaction: the same rows
	# straight to PostgreSQL and through pgslab (10 clients on 1 backend)
	my $dbd = <<'PL';
use strict; use warnings; use DBI;
my ($port, $user, $pw, $dir) = @ARGV;
my @kids;
for my $k (0 .. 9) {
	my $pid = fork // die "fork: $!";
	if (!$pid) {
		my $out = '';
		eval {
			my $dbh = DBI->connect("dbi:Pg:dbname=postgres;host=127.0.0.1;port=$port", $user, $pw,
				{ AutoCommit => 0, RaiseError => 1, PrintError => 0, pg_server_prepare => 1 });
			for my $i (1 .. 20) {
				{
					my $sth = $dbh->prepare('SELECT $1::int * 3 + $2::int', { pg_prepare_now => 1 });
					$sth->execute($i, $k);
					$out .= ($sth->fetchrow_array)[0] . ',';
					$sth->finish;
				}	# freed: DBD::Pg sends DEALLOCATE, inside the transaction
				$out .= $dbh->selectrow_array('SELECT 1') . ';';
				$dbh->commit;
			}
			$dbh->disconnect;
			1;
		} or $out = "error: $@";
		open(my $f, '>', "$dir/$k.out") or die "$dir/$k.out: $!";
		print $f $out;
		close $f;
		exit 0;
	}
	push @kids, $pid;
}
waitpid($_, 0) for @kids;
for my $k (0 .. 9) {
	open(my $f, '<', "$dir/$k.out") or die "$dir/$k.out: $!";
	local $/;
	print scalar(<$f>), "\n";
	close $f;
}
PL
	my @out;
	for my $port ($p->port, $node->port) {
		my $dir = File::Temp::tempdir(CLEANUP => 1);
		my ($rc, $o, $e) = PgSlab::Test::Cluster::run_command(
			[ $^X, '-e', $dbd, $port, $node->superuser, $node->superuser_password, $dir ],
			timeout => 60);
		push @out, $o . $e;
	}
	ok($out[0] eq $out[1] && $out[0] !~ /error/ && $out[0] =~ /^(?:\d+,1;){20}$/m,
		'DBD::Pg freeing statement handles inside transactions: the same rows as straight to PostgreSQL')
	    or diag("pgslab:\n$out[0]\ndirect:\n$out[1]");
	close $_ for @conn;
	ok(wait_idle($p), 'dealloc proxy idle');
	is($p->stop, 0, 'dealloc proxy exits cleanly');
}

# ---- max_prepared_statements changed at run time: a randomized check
# against a model of the backend's LRU (what PgBouncer does: a statement
# prepared on a backend evicts the least recently used ones until it holds
# at most max; lowering max evicts nothing until the next one), the
# backend's pg_prepared_statements compared with the model after each step ----
{
	my $p = proxy_with('p071_resize', default_pool_size => 1, max_prepared_statements => 4);
	my ($a, $b) = (wconn($p), wconn($p));
	my $seed = $ENV{SEED} // int(rand(1_000_000));
	srand($seed);
	my (@lru, %name_of, @bad);	# texts, most recently used first
	my ($max, $k) = (4, 0);
	my $use = sub {
		my ($text) = @_;
		if (grep { $_ eq $text } @lru) {
			@lru = ($text, grep { $_ ne $text } @lru);
		} else {
			pop @lru while @lru >= $max;
			unshift @lru, $text;
		}
	};
	for my $step (1 .. 80) {
		my $r = rand();
		my $did;
		if ($r < 0.15) {
			$max = 1 + int(rand(6));
			$p->admin("SET max_prepared_statements = $max");
			$did = "SET max $max";
		} elsif ($r < 0.6 || !%name_of) {
			my $v = int(rand(10));
			my $n = 'r' . ++$k;
			my $got = rows_of($a, P($n, "SELECT $v") . B($n) . E() . S());
			push @bad, "step $step: $n got '$got'" unless $got eq $v;
			$name_of{$n} = "SELECT $v";
			$use->("SELECT $v");
			$did = "P $n SELECT $v";
		} else {
			my @n = sort keys %name_of;
			my $n = $n[int(rand(@n))];
			my ($v) = $name_of{$n} =~ /(\d+)$/;
			my $got = rows_of($a, B($n) . E() . S());
			push @bad, "step $step: B $n got '$got'" unless $got eq $v;
			$use->($name_of{$n});
			$did = "B $n";
		}
		my $held = rows_of($b, frontend_message('Q',
			"SELECT coalesce(string_agg(statement, '|' ORDER BY statement), '') FROM pg_prepared_statements\0"));
		my $want = join('|', sort @lru);
		push @bad, "step $step ($did, max $max): backend holds '$held', model '$want'" if $held ne $want;
		my $sv = join(',', @{ server_prepared($p) });
		push @bad, "step $step: SHOW SERVERS $sv, model " . scalar(@lru) if $sv ne scalar(@lru);
		last if @bad > 3;
	}
	ok(!@bad, "80 random steps with max_prepared_statements changed at run time: the backend holds "
		. "what the LRU model says (seed $seed)") or diag(join "\n", @bad);

	# 0 turns the rewriting off at once (as PgBouncer): a name prepared
	# before reaches the backend as it came; set back, it works again
	$p->admin('SET max_prepared_statements = 4');
	is(rows_of($a, P('z1', 'SELECT 77') . B('z1') . E() . S()), '77', 'z1 prepared');
	my $before = join(',', @{ server_prepared($p) });
	$p->admin('SET max_prepared_statements = 0');
	my ($t, $c) = xchg($a, B('z1') . E() . S());
	is($c, '26000', 'max_prepared_statements = 0: the name goes to the backend as it came (26000)');
	is(rows_of($b, frontend_message('Q', "SELECT count(*) FROM pg_prepared_statements\0")), $before,
		'nothing evicted by turning it off');
	$p->admin('SET max_prepared_statements = 4');
	is(rows_of($a, B('z1') . E() . S()), '77', 'set back: the client\'s names were kept');
	close $_ for $a, $b;
	ok(wait_idle($p), 'resize proxy idle');
	is($p->stop, 0, 'resize proxy exits cleanly');
}

# ---- max_prepared_statements = 0: named statements pass through as before ----
{
	my $p = proxy_with('p071_off', default_pool_size => 1, max_prepared_statements => 0);
	my $a = wconn($p);
	is(rows_of($a, P('o1', 'SELECT 1') . B('o1') . E() . S()), '1', 'off: pass-through');
	is(join(',', @{ server_prepared($p) }), '0', 'off: nothing tracked');
	close $a;
	is($p->stop, 0, 'off proxy exits cleanly');
}

done_testing();
