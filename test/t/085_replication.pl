# 085_replication.pl -- issue 15: replication connections (startup parameter "replication":
# "database" for logical, a true boolean for physical) through pgslab, with real clients:
# psql running replication commands and SQL, pg_receivewal and pg_basebackup (checked by
# pg_verifybackup), pg_recvlogical compared with the same slot work done straight against
# PostgreSQL, replication and pooled clients on one pool, how replication servers count
# against pool_size, max_db_connections and max_user_connections, refusals in PgBouncer's
# words, and a client that leaves mid-stream (its server closed, never reused).
# Every wait and every run is bounded in time and count.

use strict;
use warnings;

use Test::More;
use File::Temp ();
use POSIX ();
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c085',
	extra_conf => [ 'wal_level = logical', 'max_wal_senders = 20',
		'max_replication_slots = 20', 'wal_sender_timeout = 60s' ],
	hba => [ 'host replication pgsuper 127.0.0.1/32 scram-sha-256',
		'host replication repl 127.0.0.1/32 scram-sha-256' ]);
$node->start;
$node->create_user('repl', 'repl_pw', options => 'REPLICATION');
$node->create_user('plain', 'plain_pw');
$node->create_user('app', 'app_pw');
$node->safe_psql('postgres', 'GRANT ALL ON SCHEMA public TO app');
my $cport = $node->port;
my $bindir = PgSlab::Test::Cluster::pg_bindir();
my $su = $node->superuser;
my $supw = $node->superuser_password;

my $db = "host=127.0.0.1 port=$cport dbname=postgres";
my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	databases => {
		postgres => "$db pool_size=6",
		small    => "$db pool_size=2",
		maxdb    => "$db pool_size=5 max_db_connections=2",
		users1   => "$db pool_size=5",
		forced   => "$db user=plain",
		# physical clients (pg_basebackup, pg_receivewal) ask for "replication"
		replication => $db,
	},
	users    => { repl => 'max_user_connections=1' },
	# transaction pooling and a short query_timeout: replication sessions are the
	# client's own whatever the pool mode, and a stream is not a query that times out
	settings => { pool_mode => 'transaction', default_pool_size => 5, log_connections => 1,
		log_disconnections => 1, query_timeout => 3, server_check_delay => 0 },
	userlist => [ @{ userlist_from_cluster($node, qw(pgsuper repl app)) },
		[ 'plain', 'plain_pw' ] ]);
$proxy->start;
my $pport = $proxy->port;

my %pw = ($su => $supw, repl => 'repl_pw', plain => 'plain_pw', app => 'app_pw');

sub poll_until { return PgSlab::Test::Cluster::_poll_until($_[1] // 10, $_[0]) }

sub slurp { PgSlab::Test::Cluster::_slurp($_[0]) }

# A connection string to pgslab (or to PostgreSQL with direct => 1).
sub cs
{
	my (%p) = @_;
	my $direct = delete $p{direct};
	my %d = (host => '127.0.0.1', port => $direct ? $cport : $pport, user => $su,
		dbname => 'postgres', %p);
	return join(' ', map { "$_=$d{$_}" } sort keys %d);
}

# Run a PostgreSQL client program (bounded); (rc, stdout, stderr).
sub run
{
	my ($argv, %o) = @_;
	my $user = $o{user} // $su;
	return PgSlab::Test::Cluster::run_command([ "$bindir/$argv->[0]", @$argv[1 .. $#$argv] ],
		env => { PGPASSWORD => $pw{$user}, PGCONNECT_TIMEOUT => 10, LC_ALL => 'C' },
		timeout => $o{timeout} // 60, stdin => $o{stdin});
}

sub spawn
{
	my ($argv, $out, %o) = @_;
	my $user = $o{user} // $su;
	return PgSlab::Test::Cluster::spawn_command([ "$bindir/$argv->[0]", @$argv[1 .. $#$argv] ],
		env => { PGPASSWORD => $pw{$user}, PGCONNECT_TIMEOUT => 10, LC_ALL => 'C' },
		stdout_file => $out, stderr_file => "$out.err");
}

sub psql_cs
{
	my ($conn, $sql, %o) = @_;
	return run([ 'psql', '-X', '-A', '-t', '-q', '-v', 'ON_ERROR_STOP=1', '-d', $conn, '-c', $sql ],
		%o);
}

sub stop_child
{
	my ($pid, $sig) = @_;
	kill $sig // 'INT', $pid;
	my $st = PgSlab::Test::Cluster::wait_pid($pid, 15);
	if (!defined $st) {
		kill 'KILL', $pid;
		waitpid($pid, 0);
		return -1;
	}
	return $st;
}

sub pg_value
{
	my ($sql) = @_;
	my $v = $node->safe_psql('postgres', $sql);
	$v =~ s/^\s+|\s+$//g;
	return $v;
}

sub walsenders { pg_value("SELECT count(*) FROM pg_stat_replication") }

sub pool_row
{
	my ($dbname, $user) = @_;
	my ($r) = grep { $_->{database} eq $dbname && $_->{user} eq ($user // $su) }
	    $proxy->admin_hash('SHOW POOLS');
	return $r // {};
}

sub repl_servers
{
	my ($kind) = @_;
	return grep { $_->{replication} eq $kind } $proxy->admin_hash('SHOW SERVERS');
}

sub log_count
{
	my ($re) = @_;
	my @m = slurp($proxy->logfile) =~ /$re/g;
	return scalar @m;
}

# DBD::Pg holding a replication session open (it sends nothing at connect).
sub repl_dbi
{
	my ($dbname, $kind, %o) = @_;
	return $proxy->connect_dbi($dbname, user => $o{user} // $su,
		password => $pw{ $o{user} // $su }, params => { replication => $kind });
}

my $tmp = File::Temp->newdir('pgslab_085_XXXXXX', TMPDIR => 1, CLEANUP => !$ENV{PGSLAB_KEEP_TMP});

# --- replication commands and SQL on a logical connection ------------------------------------
my ($rc, $out, $err) = psql_cs(cs(replication => 'database'), 'IDENTIFY_SYSTEM');
my ($rc2, $direct) = psql_cs(cs(replication => 'database', direct => 1), 'IDENTIFY_SYSTEM');
is($rc, 0, 'logical: IDENTIFY_SYSTEM through pgslab') or diag($err);
my ($sysid) = split /\|/, $out // '';
my ($dsysid) = split /\|/, $direct // '';
ok($sysid && $sysid eq $dsysid, "logical: the same system identifier as PostgreSQL ($sysid)");
is((psql_cs(cs(replication => 'database', application_name => 'abc',
	options => "'-c enable_seqscan=off -c work_mem=7MB'"),
	"SELECT current_setting('application_name'), current_setting('enable_seqscan'), " .
	"current_setting('work_mem'), pg_backend_pid() = (SELECT pid FROM pg_stat_replication " .
	"WHERE application_name = 'abc')"))[1],
	'abc|off|7MB|t',
	'logical: SQL runs on a walsender; application_name and options (any -c) reach it');
ok($proxy->wait_for_log(qr/login attempt: db=postgres user=pgsuper tls=no replication=database/),
	'login line: replication=database');

# --- physical: replication commands, SQL refused by PostgreSQL itself -----------------------
($rc, $out, $err) = psql_cs(cs(replication => 'true', application_name => 'phys'),
	'SHOW application_name');
is($out, 'phys', 'physical: SHOW application_name (a replication command)') or diag($err);
($rc, $out, $err) = psql_cs(cs(replication => 'yes'), 'SELECT 1');
ok($rc != 0 && $err =~ /cannot execute SQL commands in WAL sender for physical replication/,
	"physical: SQL gets PostgreSQL's own refusal") or diag($err);
ok($proxy->wait_for_log(qr/login attempt: db=postgres user=pgsuper tls=no replication=yes/),
	'login line: replication=yes');
($rc, $out, $err) = psql_cs(cs(replication => 'off'), 'SELECT 42');
is($out, '42', 'replication=off is an ordinary pooled connection');
# PostgreSQL's parse_bool(): prefixes, any case; on/off from two letters; 1 and 0 only
for my $v (qw(ON 1 T ye tru)) {
	($rc, $out) = psql_cs(cs(replication => $v), 'IDENTIFY_SYSTEM');
	like($out, qr/^\d+\|\d+\|[0-9A-F]+\/[0-9A-F]+\|$/,
		"replication=$v is physical (IDENTIFY_SYSTEM names no database)");
}
for my $v (qw(of 0 n FALSE)) {
	($rc, $out) = psql_cs(cs(replication => $v), 'SELECT 6');
	is($out, '6', "replication=$v is no replication");
}
for my $v (qw(o 10 truex)) {
	($rc, $out, $err) = psql_cs(cs(replication => $v), 'SELECT 1');
	like($err, qr/invalid value for parameter "replication"/, "replication=$v is refused");
}
($rc, $out, $err) = psql_cs(cs(replication => 'maybe'), 'SELECT 1');
like($err, qr/invalid value for parameter "replication": "maybe"/,
	"an invalid value: PostgreSQL's refusal");
($rc, $out, $err) = psql_cs(cs(replication => 'database', dbname => 'pgslab'), 'SHOW POOLS');
like($err, qr/replication connections to the admin console are not supported/,
	'no replication connection to the console');

# --- SHOW CLIENTS / SERVERS / POOLS for a held session ---------------------------------------
{
	my $h = repl_dbi('postgres', 'database');
	my @c = grep { $_->{replication} eq 'logical' } $proxy->admin_hash('SHOW CLIENTS');
	my @s = repl_servers('logical');
	is(scalar @c, 1, 'SHOW CLIENTS: replication = logical');
	is(scalar @s, 1, 'SHOW SERVERS: replication = logical');
	ok(@c && @s && $c[0]{link} eq $s[0]{ptr} && $s[0]{link} eq $c[0]{ptr} &&
		$c[0]{state} eq 'active' && $s[0]{state} eq 'active',
		'the client and its own server are linked, both active');
	is(pg_value("SELECT count(*) FROM pg_stat_replication WHERE pid = $s[0]{remote_pid}"), 1,
		"the server is a walsender (pid $s[0]{remote_pid})") if @s;
	my $p = pool_row('postgres');
	is("$p->{cl_active}/$p->{sv_active}", '1/1', 'SHOW POOLS counts them as active');
	$h->disconnect;
	ok(poll_until(sub { !repl_servers('logical') && walsenders() == 0 }, 10),
		'client gone: its server is closed at once (no idle replication server)');
	ok($proxy->wait_for_log(qr/closing because: replication client disconnected/),
		'"closing because: replication client disconnected"');
}

# --- RECONNECT: a replication session ends at once (as PgBouncer), not when released -----------
{
	my $h = repl_dbi('postgres', 'database');
	ok(repl_servers('logical') == 1, 'a replication session');
	$proxy->admin('RECONNECT postgres');
	ok(poll_until(sub { !repl_servers('logical') && walsenders() == 0 }, 10),
		'RECONNECT: its server is closed at once');
	ok($proxy->wait_for_log(qr/closing because: database configuration changed/),
		'"closing because: database configuration changed"');
	ok(!eval { $h->do('IDENTIFY_SYSTEM'); 1 }, 'and its client with it');
	$h->disconnect;
}

# --- pg_receivewal (physical, with a slot) past query_timeout --------------------------------
{
	$node->safe_psql('postgres', "SELECT pg_create_physical_replication_slot('wal085')");
	my $dir = "$tmp/wal";
	mkdir $dir or die "mkdir $dir: $!";
	my $pid = spawn([ 'pg_receivewal', '-d', cs(), '-S', 'wal085', '-D', $dir, '-n' ],
		"$tmp/receivewal.out");
	ok(poll_until(sub { repl_servers('physical') == 1 }, 10), 'pg_receivewal: a physical server');
	$node->safe_psql('postgres', 'CREATE TABLE walgen AS SELECT g FROM generate_series(1, 20000) g');
	$node->safe_psql('postgres', 'SELECT pg_switch_wal()');
	sleep(4); # longer than query_timeout (3 s)
	my @files = glob("$dir/0*");
	my $st = stop_child($pid, 'INT');
	is($st, 0, 'pg_receivewal: streamed past query_timeout, stopped cleanly by SIGINT')
	    or diag(slurp("$tmp/receivewal.out.err"));
	ok(@files >= 1, 'pg_receivewal: WAL segments written (' . scalar(@files) . ')');
	is(log_count(qr/closing because: query timeout/), 0, 'the stream never met query_timeout');
	ok(poll_until(sub { pg_value("SELECT active FROM pg_replication_slots WHERE slot_name = 'wal085'")
		eq 'f' }, 10), 'pg_receivewal gone: its walsender is gone');
	$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('wal085')");
}

# --- pg_basebackup (two replication connections at once), verified --------------------------
{
	my $dir = "$tmp/base";
	($rc, $out, $err) = run([ 'pg_basebackup', '-d', cs(), '-D', $dir, '--checkpoint=fast',
		'-X', 'stream', '--no-sync' ], timeout => 120);
	is($rc, 0, 'pg_basebackup -X stream through pgslab') or diag($err);
	ok(-f "$dir/PG_VERSION" && -f "$dir/backup_manifest", 'a data directory and its manifest');
	($rc, $out, $err) = run([ 'pg_verifybackup', '-n', $dir ], timeout => 120);
	is($rc, 0, 'pg_verifybackup: every file matches the manifest') or diag("$out\n$err");
	ok(poll_until(sub { walsenders() == 0 && !repl_servers('physical') }, 10),
		'both replication servers closed');
}

# --- pg_recvlogical through pgslab against the same work read straight from PostgreSQL -------
{
	$node->safe_psql('postgres', 'CREATE TABLE dtab (id int PRIMARY KEY, v text)');
	($rc, $out, $err) = run([ 'pg_recvlogical', '-d', cs(), '-S', 'via_pgslab', '-P',
		'test_decoding', '--create-slot' ]);
	is($rc, 0, 'pg_recvlogical --create-slot through pgslab (CREATE_REPLICATION_SLOT)') or diag($err);
	($rc, $out, $err) = run([ 'pg_recvlogical', '-d', cs(direct => 1), '-S', 'direct', '-P',
		'test_decoding', '--create-slot' ]);
	is($rc, 0, 'the same slot straight on PostgreSQL') or diag($err);
	$node->safe_psql('postgres', join(";\n",
		"INSERT INTO dtab SELECT g, repeat('x', g % 50) FROM generate_series(1, 500) g",
		'BEGIN', "UPDATE dtab SET v = 'upd' WHERE id % 7 = 0", 'DELETE FROM dtab WHERE id > 450',
		'COMMIT', "INSERT INTO dtab VALUES (1000, E'multi\\nline \\\\ text')",
		"INSERT INTO dtab SELECT g, repeat('y', 3000) FROM generate_series(2000, 2040) g"));
	my $end = pg_value('SELECT pg_current_wal_insert_lsn()');
	my @args = ('-S', undef, '--start', '-E', $end, '--no-loop', '-o', 'include-xids=1',
		'-o', 'include-timestamp=1', '-f');
	my @a1 = @args; $a1[1] = 'via_pgslab';
	my @a2 = @args; $a2[1] = 'direct';
	($rc, $out, $err) = run([ 'pg_recvlogical', '-d', cs(), @a1, "$tmp/dec_pgslab.txt" ],
		timeout => 60);
	is($rc, 0, 'pg_recvlogical --start through pgslab up to a known LSN') or diag($err);
	($rc, $out, $err) = run([ 'pg_recvlogical', '-d', cs(direct => 1), @a2, "$tmp/dec_direct.txt" ],
		timeout => 60);
	is($rc, 0, 'and straight on PostgreSQL') or diag($err);
	my ($via, $dir) = (slurp("$tmp/dec_pgslab.txt"), slurp("$tmp/dec_direct.txt"));
	my $n = () = $via =~ /^table public\.dtab: /mg;
	ok($n == 500 + 71 + 50 + 1 + 41, "decoded changes through pgslab: $n");
	ok(length $via > 0 && $via eq $dir, 'pg_recvlogical output identical through pgslab and direct ('
		. length($via) . ' bytes)');
}

# --- a streaming replication client and pooled clients on one pool --------------------------
{
	$node->safe_psql('postgres', "SELECT pg_create_logical_replication_slot('mixed', 'test_decoding')");
	($rc, $out, $err) = PgSlab::Test::Cluster::_pgbench_common('127.0.0.1', $cport, '-i', '-s', '1',
		'-q', 'postgres');
	is($rc, 0, 'pgbench -i') or diag($err);
	my $pid = spawn([ 'pg_recvlogical', '-d', cs(), '-S', 'mixed', '--start', '--no-loop',
		'-f', "$tmp/mixed.txt", '-F', '1', '-s', '1' ], "$tmp/mixed.out");
	ok(poll_until(sub { repl_servers('logical') == 1 }, 10), 'pg_recvlogical streaming');
	my ($s) = repl_servers('logical');
	my $wpid = $s ? $s->{remote_pid} : 0;
	($rc, $out, $err) = $proxy->pgbench('-n', '-c', '4', '-j', '2', '-T', '3', '-M', 'extended',
		'postgres', { timeout => 60 });
	ok($rc == 0 && $out =~ /number of failed transactions: 0 \(/,
		'pgbench through the same pool: no failed transaction') or diag("$out\n$err");
	my @s2 = repl_servers('logical');
	ok(@s2 == 1 && $s2[0]{remote_pid} == $wpid && $s2[0]{link} ne '',
		'the same walsender is still linked to its client');
	is(pg_value("SELECT query FROM pg_stat_activity WHERE pid = $wpid") =~ /START_REPLICATION/ ? 1 : 0,
		1, "nothing of pgbench ran on the walsender (its last command: START_REPLICATION)");
	my @pooled = grep { $_->{replication} eq 'none' && $_->{database} eq 'postgres' }
	    $proxy->admin_hash('SHOW SERVERS');
	ok(!grep({ $_->{remote_pid} == $wpid } @pooled), 'no pooled server is the walsender');
	ok(poll_until(sub { slurp("$tmp/mixed.txt") =~ /table public\.pgbench_accounts: UPDATE/ }, 10),
		"pgbench's updates decoded meanwhile");
	is(stop_child($pid, 'INT'), 0, 'pg_recvlogical stopped cleanly');
	ok(poll_until(sub { walsenders() == 0 && !repl_servers('logical') }, 10),
		'its server closed');
	$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('mixed')");
}

# --- pool_size, max_db_connections, max_user_connections --------------------------------------
# <dbname> with <user>: hold <n> replication sessions; one more waits (and is counted) until
# one of them leaves.
sub limit_case
{
	my ($dbname, $user, $n, $what) = @_;
	my @h = map { repl_dbi($dbname, 'database', user => $user) } 1 .. $n;
	is(scalar(grep { defined } @h), $n, "$what: $n replication sessions");
	my $pid = spawn([ 'psql', '-X', '-A', '-t', '-d', cs(dbname => $dbname, user => $user,
		replication => 'database'), '-c', 'IDENTIFY_SYSTEM' ], "$tmp/wait_$dbname.out",
		user => $user);
	ok(poll_until(sub { (pool_row($dbname, $user)->{cl_waiting} // 0) == 1 }, 10),
		"$what: one more waits (cl_waiting 1)");
	my @w = grep { $_->{database} eq $dbname && $_->{state} eq 'waiting' }
	    $proxy->admin_hash('SHOW CLIENTS');
	ok(@w == 1 && $w[0]{replication} eq 'logical', "$what: SHOW CLIENTS shows it waiting");
	sleep(0.5);
	is(pg_value("SELECT count(*) FROM pg_stat_replication WHERE usename = '$user'"), $n,
		"$what: still $n walsenders");
	ok(!defined PgSlab::Test::Cluster::wait_pid($pid, 0.1), "$what: it has no answer yet");
	$h[0]->disconnect;
	my $st = PgSlab::Test::Cluster::wait_pid($pid, 15);
	is($st, 0, "$what: served once one leaves") or diag(slurp("$tmp/wait_$dbname.out.err"));
	$_->disconnect for @h[1 .. $#h];
	ok(poll_until(sub { walsenders() == 0 }, 10), "$what: all closed");
}
limit_case('small', $su, 2, 'pool_size 2');
limit_case('maxdb', $su, 2, 'max_db_connections 2');
limit_case('users1', 'repl', 1, 'max_user_connections 1');

# eviction: pooled clients leave idle servers filling the pool; a replication client evicts one
{
	my @h = map { $proxy->connect_dbi('small', attrs => { AutoCommit => 0 }) } 1 .. 2;
	$_->do('SELECT 1') for @h;
	$_->rollback for @h;
	$_->disconnect for @h;
	my $p = pool_row('small');
	is("$p->{sv_idle}/$p->{sv_active}", '2/0', 'small: two idle pooled servers');
	my $before = log_count(qr/closing because: evicted/);
	($rc, $out, $err) = psql_cs(cs(dbname => 'small', replication => 'database'),
		'IDENTIFY_SYSTEM');
	is($rc, 0, 'a replication client on the full pool is served') or diag($err);
	ok($proxy->wait_for_log(qr/closing because: evicted/) &&
		log_count(qr/closing because: evicted/) == $before + 1,
		'"closing because: evicted": one idle server made room');
}

# --- refused logins: PgBouncer's words, nobody else affected ---------------------------------
{
	my $fails = log_count(qr/closing because: login failed \(age/);
	($rc, $out, $err) = psql_cs(cs(user => 'plain', replication => 'database'), 'IDENTIFY_SYSTEM',
		user => 'plain');
	like($err, qr/FATAL:  login failed/, 'unprivileged logical: "login failed"');
	ok($proxy->wait_for_log(qr/server login failed: FATAL must be superuser or replication role to start walsender/),
		"the server's reason is logged");
	ok(poll_until(sub { log_count(qr/closing because: login failed \(age/) == $fails + 2 }, 5),
		'"closing because: login failed" for the server and the client');
	($rc, $out, $err) = psql_cs(cs(user => 'plain', replication => 'true'), 'IDENTIFY_SYSTEM',
		user => 'plain');
	like($err, qr/FATAL:  login failed/, 'unprivileged physical: "login failed"');
	ok($proxy->wait_for_log(qr/no pg_hba\.conf entry for replication connection from host/),
		"PostgreSQL's hba refusal is logged");
	($rc, $out, $err) = psql_cs(cs(user => 'plain'), 'SELECT 7', user => 'plain');
	is($out, '7', 'the same pool serves a pooled client at once (no server_login_retry)')
	    or diag($err);
	($rc, $out, $err) = psql_cs(cs(dbname => 'forced', replication => 'database'), 'SELECT 1');
	like($err, qr/login failed/, 'a forced user without REPLICATION: "login failed"');
}

# --- auth_type = hba: only a physical connection matches the keyword "replication" ----------
{
	my $hba = "$tmp/hba.conf";
	open(my $fh, '>', $hba) or die "$hba: $!";
	print $fh "host replication $su 127.0.0.1/32 scram-sha-256\n",
		"host all $su 127.0.0.1/32 reject\n";
	close $fh;
	my $px2 = PgSlab::Test::Proxy->new(cluster => $node, name => 'p085hba',
		databases => { postgres => $db },
		settings => { auth_type => 'hba', auth_hba_file => $hba },
		userlist => userlist_from_cluster($node, $su));
	$px2->start;
	my %c = (host => '127.0.0.1', port => $px2->port, user => $su, dbname => 'postgres');
	my $conn = sub { my %x = (%c, @_); join(' ', map { "$_=$x{$_}" } sort keys %x) };
	($rc, $out, $err) = psql_cs($conn->(replication => 'true', application_name => 'hba'),
		'SHOW application_name');
	is($out, 'hba', 'hba: a physical connection matches "host replication"') or diag($err);
	($rc, $out, $err) = psql_cs($conn->(replication => 'database'), 'IDENTIFY_SYSTEM');
	like($err, qr/login rejected/, 'hba: a logical one matches by database name (reject)');
	($rc, $out, $err) = psql_cs($conn->(), 'SELECT 1');
	like($err, qr/login rejected/, 'hba: so does a pooled one');
	is($px2->stop, 0, 'hba proxy exits cleanly');
}

# --- a client that leaves mid-stream: its server is closed, never reused ----------------------
{
	$node->safe_psql('postgres', "SELECT pg_create_logical_replication_slot('gone', 'test_decoding')");
	my $s = raw_connect('127.0.0.1', $pport);
	my $o = scram_login($s, $su, $supw, replication => 'database', application_name => 'rawrepl');
	ok($o->{ready}, 'raw replication login') or diag(describe_outcome($o));
	raw_query($s, "START_REPLICATION SLOT gone LOGICAL 0/0");
	my ($t, $b) = read_msg($s, 10);
	is($t, 'W', 'START_REPLICATION: CopyBothResponse');
	$node->safe_psql('postgres', "INSERT INTO dtab VALUES (5000, 'stream')");
	my $got = '';
	for (my $i = 0; $i < 50 && $got !~ /stream/; $i++) {
		my ($t2, $b2) = read_msg($s, 5);
		last if $t2 ne 'd';
		$got .= $b2;
	}
	like($got, qr/table public\.dtab: INSERT: id\[integer\]:5000/, 'XLogData through pgslab');
	my ($sv) = repl_servers('logical');
	my $wpid = $sv ? $sv->{remote_pid} : 0;
	# half a CopyData (a standby status update), then the connection drops
	raw_send($s, 'd' . pack('N', 38) . 'r' . ("\0" x 10));
	sleep(0.2);
	close $s;
	ok(poll_until(sub { pg_value("SELECT count(*) FROM pg_stat_activity WHERE pid = $wpid") == 0 }, 10),
		'client gone mid-message: the walsender is gone');
	ok(!repl_servers('logical'), 'no replication server left in SHOW SERVERS');
	is(pg_value("SELECT active FROM pg_replication_slots WHERE slot_name = 'gone'"), 'f',
		'the slot is free again');
	my ($rc3, $out3) = psql_cs(cs(), 'SELECT pg_backend_pid()');
	isnt($out3, $wpid, 'a pooled client never lands on it');
	$node->safe_psql('postgres', "SELECT pg_drop_replication_slot('gone')");
}

# --- nothing left behind ------------------------------------------------------------------------
{
	my @p = grep { $_->{user} ne 'pgslab' } $proxy->admin_hash('SHOW POOLS');
	ok(!grep({ $_->{cl_waiting} != 0 } @p), 'no client left waiting');
	ok(!grep({ $_->{replication} ne 'none' } $proxy->admin_hash('SHOW SERVERS')),
		'no replication server left');
	is(walsenders(), 0, 'no walsender left');
	$node->safe_psql('postgres', "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots");
}

# a client that left between messages had its Terminate passed on: its walsender ended
# cleanly; only the one dropped mid-message saw its connection break
{
	my @eof = $node->log_content =~ /unexpected EOF on standby connection/g;
	is(scalar @eof, 1, 'one walsender saw an unexpected EOF: the client that left mid-message');
}

is($proxy->stop, 0, 'pgslab exits cleanly');
unlike(slurp($proxy->logfile), qr/AddressSanitizer|runtime error:/, 'no sanitizer report');
done_testing();
