# 069_auth_query.pl -- issue 14: auth_user / auth_query / auth_dbname.  Users missing from
# the auth_file are looked up in PostgreSQL on a pooled connection of the auth user,
# asynchronously, with the name as a bind parameter and search_path pinned; expired,
# NOLOGIN, password-less and unknown roles fail exactly like a wrong password.

use strict;
use warnings;

use Test::More;
use POSIX ();
use Time::HiRes qw(sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c069');
$node->start;
my $cport = $node->port;
$node->create_user('authu', 'authu_pw', superuser => 1);
$node->create_user('q_scram', 'scram_pw');
$node->create_user('q_md5', 'md5_pw', method => 'md5');
$node->create_user('q_exp', 'exp_pw', options => "VALID UNTIL '1999-01-01'");
$node->create_user('q_nologin', 'nologin_pw');
$node->safe_psql('postgres', 'ALTER ROLE q_nologin NOLOGIN');
$node->create_user('q_nopw', undef);
$node->safe_psql('postgres', q{
	CREATE TABLE victim (x int); INSERT INTO victim VALUES (1);
	CREATE SCHEMA malicious_schema;
	CREATE FUNCTION auth_check_search_path(username text)
	RETURNS TABLE(usename name, passwd text) AS $$
	BEGIN
		IF current_setting('search_path') LIKE '%malicious_schema%' THEN
			RAISE EXCEPTION 'malicious search_path detected in auth query';
		END IF;
		RETURN QUERY SELECT a.rolname, a.rolpassword FROM pg_authid a
			WHERE a.rolname = username AND a.rolcanlogin;
	END;
	$$ LANGUAGE plpgsql SECURITY DEFINER;
});
# md5 in pg_hba also takes SCRAM: the md5-stored role can log in to PostgreSQL at all
$node->write_hba('host all q_nopw 127.0.0.1/32 trust', 'host all all 127.0.0.1/32 md5');
$node->reload;
my $dead_port = PgSlab::Test::Cluster::get_free_port();
my $base = "host=127.0.0.1 port=$cport dbname=postgres";

my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p069',
	databases => {
		postgres => $base,
		# the lookup's server is down: a clear error, quickly
		downdb   => "$base auth_dbname=deadauth",
		deadauth => "host=127.0.0.1 port=$dead_port dbname=postgres",
		# the auth query fails in PostgreSQL: logged with the server's words
		baddb    => "$base auth_query='SELECT usename, passwd FROM not_pg_shadow WHERE usename = \$1'",
		# a slow lookup, for clients that leave while it runs
		slowdb   => "$base auth_query='SELECT rolname, rolpassword FROM pg_authid, pg_sleep(0.5) WHERE rolname = \$1'",
		# lookups that answer an empty or a NULL secret
		emptydb  => "$base auth_query='SELECT \$1::text, ''''::text'",
		nulldb   => "$base auth_query='SELECT \$1::text, NULL::text'",
		# an unqualified function found through the session's search_path
		pathdb   => "$base auth_query='SELECT * FROM auth_check_search_path(\$1)'",
		# its own auth_user (per-database key) and a database without auth_user
		ownuser  => "$base auth_user=authu",
		# auth_dbname naming the console, or nothing configured
		rsvdb    => "$base auth_dbname=pgbouncer",
		unconfdb => "$base auth_dbname=nosuchauthdb",
		# the auth database's server refuses the auth user's login (no such database)
		missingauth => "host=127.0.0.1 port=$cport dbname=no_such_pg_db_069",
		usesmissing => "$base auth_dbname=missingauth",
	},
	users    => { authu => { pool_size => 2 } },
	settings => {
		auth_type              => 'scram-sha-256',
		auth_user              => 'authu',
		pool_mode              => 'transaction',
		track_extra_parameters => 'search_path',
		server_login_retry     => 1,
	},
	userlist => [ [ 'authu', 'authu_pw' ] ]);
$proxy->start;

# Occurrences of <re> in the log file (not the captured stderr).
sub count_log
{
	my ($re) = @_;
	my ($log) = split /\n--- pgslab stdout\/stderr ---\n/, $proxy->log_content;
	return scalar(() = ($log // '') =~ /$re/g);
}

sub login
{
	my ($user, $pw, $db, %o) = @_;
	return $proxy->psql($db // 'postgres', $o{sql} // 'SELECT current_user',
		user => $user, password => $pw, timeout => 30, %o);
}

# --- found through auth_query: SCRAM and md5 stored secrets ----------------------------------
my ($rc, $out, $err) = login('q_scram', 'scram_pw');
is($rc, 0, 'SCRAM-stored user found by auth_query logs in with psql') or diag($err);
is($out =~ s/\s+//gr, 'q_scram', '... and is q_scram on the server (SCRAM pass-through)');
($rc, $out, $err) = login('q_md5', 'md5_pw');
isnt($rc, 0, 'md5-stored user, right password: refused (an md5 secret cannot check SCRAM; no md5 fallback, as PgBouncer)');
like($err, qr/SASL authentication failed/, '... as any failed SCRAM exchange') or diag($err);
ok($proxy->wait_for_log(qr/C-\d+: postgres\/q_md5\@\S+ SCRAM authentication failed: user has MD5 secret/),
	'... and the log says why (PgBouncer\'s line)');
my $dbh = eval { $proxy->connect_dbi('postgres', user => 'q_scram', password => 'scram_pw') };
ok($dbh, 'DBD::Pg logs in as an auth_query user') or diag($@);
if ($dbh) {
	is($dbh->selectrow_array('SELECT 40 + 29'), 69, '... and runs a query');
	$dbh->disconnect;
}
my ($pool) = grep { $_->{database} eq 'postgres' && $_->{user} eq 'q_scram' }
	$proxy->admin_hash('SHOW POOLS');
ok($pool, 'the auth_query user has a pool of its own (postgres/q_scram)');
($rc, $out, $err) = login('q_scram', 'scram_pw', 'ownuser');
is($rc, 0, 'per-database auth_user key works') or diag($err);

# --- refusals: all read like a wrong password ----------------------------------------------
# PgBouncer's words depend on the exchange only: "SASL authentication failed" for any
# failed SCRAM exchange (auth_type scram-sha-256: also for an md5-stored role)
my $sasl_failed = qr/FATAL:  SASL authentication failed$/m;
my %msg;
for my $case ([ wrong => 'q_scram', 'nope' ], [ unknown => 'no_such_role', 'x' ],
	[ expired => 'q_exp', 'exp_pw' ], [ nologin => 'q_nologin', 'nologin_pw' ],
	[ nopw => 'q_nopw', 'whatever' ], [ md5wrong => 'q_md5', 'nope' ]) {
	my ($name, $u, $pw) = @$case;
	($rc, $out, $err) = login($u, $pw);
	isnt($rc, 0, "$name ($u): refused");
	like($err, $sasl_failed, "$name: the wrong-password error") or diag($err);
	(my $m = $err) =~ s/"\Q$u\E"/"USER"/g;
	$msg{$name} = $m;
}
is($msg{$_}, $msg{wrong}, "$_ reads exactly like a wrong password") for qw(unknown expired nologin nopw md5wrong);

# --- a database that does not exist: no lookup (PgBouncer's "fake" database), a wrong
# password's words even with the right one, so a stranger learns nothing about which exist
($rc, $out, $err) = login('q_scram', 'scram_pw', 'no_such_db');
isnt($rc, 0, 'auth_query user, unknown database, right password: refused');
like($err, $sasl_failed, '... as a wrong password') or diag($err);
unlike($proxy->log_content, qr/authentication database "no_such_db"|auth_query for user q_scram in db no_such_db/,
	'... and no lookup was tried for it');

# --- empty or NULL secrets never authenticate --------------------------------------------------
for my $db ('emptydb', 'nulldb') {
	for my $pw ('', 'x') {
		($rc, $out, $err) = login('q_scram', $pw, $db);
		isnt($rc, 0, "$db, password '$pw': refused");
		like($err, $sasl_failed, "$db: as a wrong password") or diag($err);
	}
}
my $o = do {
	my $s = raw_connect($proxy->host, $proxy->port);
	my $r = password_login($s, 'q_scram', '', database => 'emptydb');
	close $s;
	$r;
};
ok(!$o->{ready} && $o->{error} && $o->{error}{C} eq '28P01', 'raw client, empty password against an empty secret: 28P01')
	or diag(describe_outcome($o));

# --- a password changed in PostgreSQL takes effect on the next login ---------------------------
$node->safe_psql('postgres', "ALTER ROLE q_scram PASSWORD 'scram_pw2'");
($rc, $out, $err) = login('q_scram', 'scram_pw');
isnt($rc, 0, 'after ALTER ROLE ... PASSWORD: the old password is refused at once');
($rc, $out, $err) = login('q_scram', 'scram_pw2');
is($rc, 0, '... and the new one works') or diag($err);
$node->safe_psql('postgres', "ALTER ROLE q_scram VALID UNTIL '2000-01-01'");
($rc, $out, $err) = login('q_scram', 'scram_pw2');
isnt($rc, 0, 'expiring the role refuses its next login');
$node->safe_psql('postgres', "ALTER ROLE q_scram VALID UNTIL 'infinity'");
($rc, $out, $err) = login('q_scram', 'scram_pw2');
is($rc, 0, '... and lifting the expiry admits it again') or diag($err);

# --- user names that look like SQL stay data ----------------------------------------------------
for my $u ("x' OR '1'='1", "q_scram'; DROP TABLE victim; --", "q_scram\\", 'a"b') {
	($rc, $out, $err) = login($u, 'scram_pw2');
	isnt($rc, 0, "user name <$u>: refused");
	like($err, $sasl_failed, '... as a wrong password') or diag($err);
}
is($node->safe_psql('postgres', 'SELECT count(*) FROM victim'), '1', 'the victim table is intact');
unlike($proxy->log_content, qr/error in auth_query/, 'no injected name ever made the auth query fail');

# --- the client's startup parameters do not reach the lookup; search_path is the session's ---
$o = do {
	my $s = raw_connect($proxy->host, $proxy->port);
	my $r = password_login($s, 'q_scram', 'scram_pw2', database => 'pathdb',
		search_path => 'malicious_schema,public');
	close $s;
	$r;
};
ok($o->{ready}, 'an unauthenticated search_path does not steer the lookup (CVE-2025-12819)')
	or diag(describe_outcome($o));

# an authenticated auth-user client leaves SET search_path on a pooled server (transaction mode)
$proxy->safe_psql('pathdb', 'SET search_path = malicious_schema, public; SELECT 1',
	user => 'authu', password => 'authu_pw');
for (1 .. 3) {
	($rc, $out, $err) = login('q_scram', 'scram_pw2', 'pathdb');
	is($rc, 0, "lookup $_ after a client SET search_path on the auth pool: pinned to the session default")
		or diag($err);
}

# --- failures: the server's error in the log; a down server answers quickly ---------------------
($rc, $out, $err) = login('q_scram', 'scram_pw2', 'baddb');
isnt($rc, 0, 'auth_query failing in PostgreSQL: refused');
like($err, qr/bouncer config error/, '... with "bouncer config error" (as PgBouncer)') or diag($err);
ok($proxy->wait_for_log(qr/error in auth_query.*"not_pg_shadow" does not exist/),
	'... and the server\'s error is in the log');
($rc, $out, $err) = login('q_scram', 'scram_pw2', 'rsvdb');
like($err, qr/bouncer config error/, 'auth_dbname = pgbouncer (the console): "bouncer config error"') or diag($err);
ok($proxy->wait_for_log(qr/cannot use the reserved "pgbouncer" database as an auth_dbname/), '... logged as PgBouncer does');
# the console looked up through the global auth_user without a global auth_dbname: the
# console would be its own auth database; PgBouncer refuses it in these words
my $rsv_re = qr/cannot use the reserved "pgbouncer" database as an auth_dbname/;
my $n_rsv = count_log($rsv_re);
($rc, $out, $err) = login('q_scram', 'scram_pw2', 'pgbouncer');
isnt($rc, 0, 'console login of an auth_query user, no global auth_dbname: refused');
like($err, qr/FATAL:  bouncer config error$/m, '... "bouncer config error" (as PgBouncer)') or diag($err);
ok(PgSlab::Test::Cluster::_poll_until(10, sub { count_log($rsv_re) == $n_rsv + 1 }),
	'... logged as PgBouncer does');
($rc, $out, $err) = login('q_scram', 'wrong', 'pgbouncer');
like($err, qr/bouncer config error/, '... whatever the password (no lookup, nothing about the user)') or diag($err);
# the auth pool's server refuses the auth user's login: its words reach the waiting client,
# as PgBouncer's kill_pool_logins sends them
($rc, $out, $err) = login('q_scram', 'scram_pw2', 'usesmissing');
isnt($rc, 0, 'auth database missing in PostgreSQL: refused');
like($err, qr/FATAL:  database "no_such_pg_db_069" does not exist/, '... with the server\'s error') or diag($err);
ok($proxy->wait_for_log(qr/C-\d+: usesmissing\/q_scram\@\S+ closing because: database "no_such_pg_db_069" does not exist/),
	'... logged as the reason the client closes');
($rc, $out, $err) = login('q_scram', 'scram_pw2', 'unconfdb');
like($err, qr/bouncer config error/, 'auth_dbname not configured: "bouncer config error"') or diag($err);
ok($proxy->wait_for_log(qr/authentication database "nosuchauthdb" is not configured/), '... logged');
($rc, $out, $err) = login('q_scram', 'scram_pw2', 'downdb');
isnt($rc, 0, 'auth database down: refused');
like($err, qr/authentication lookup failed/, '... with a clear error, not a hang') or diag($err);
($rc, $out, $err) = login('q_scram', 'scram_pw2', 'downdb');
like($err, qr/authentication lookup failed/, '... also while server_login_retry holds') or diag($err);

# --- many concurrent logins: bounded by the auth pool (pool_size 2 for authu) -------------------
my @users = map { "q_many$_" } 1 .. 6;
$node->safe_psql('postgres', join('', map { "CREATE ROLE $_ LOGIN PASSWORD 'many_pw';" } @users));
my %kids;
for my $i (1 .. 24) {
	my $u = $users[$i % @users];
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		my ($r, $o2) = login($u, 'many_pw', 'postgres', sql => 'SELECT current_user');
		POSIX::_exit($r == 0 && $o2 =~ /\Q$u\E/ ? 0 : 1);
	}
	$kids{$pid} = 1;
}
my $ok = 0;
for my $pid (keys %kids) {
	waitpid($pid, 0);
	$ok++ if $? == 0;
}
is($ok, 24, '24 concurrent logins of 6 auth_query users all succeed');
my ($ap) = grep { $_->{database} eq 'postgres' && $_->{user} eq 'authu' } $proxy->admin_hash('SHOW POOLS');
ok($ap && $ap->{sv_idle} + $ap->{sv_active} + $ap->{sv_used} + ($ap->{sv_login} // 0) <= 2,
	'the lookups shared at most 2 server connections of the auth user')
	or diag(explain $ap);

# --- clients that leave while their lookup runs ---------------------------------------------------
for my $i (1 .. 8) {
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, startup_packet(user => ($i % 2 ? 'q_scram' : "q_gone$i"), database => 'slowdb'));
	close $s;
}
ok($proxy->wait_for_log(qr/closing because/, timeout => 10), 'clients left mid-lookup');
ok(PgSlab::Test::Cluster::_poll_until(15, sub {
	my ($p) = grep { $_->{database} eq 'slowdb' || ($_->{database} eq 'postgres' && $_->{user} eq 'authu') }
		$proxy->admin_hash('SHOW POOLS');
	my @ap = grep { $_->{user} eq 'authu' } $proxy->admin_hash('SHOW POOLS');
	!grep { $_->{sv_active} != 0 } @ap;
}), 'the lookups finished and their servers went back idle (clean)');
is($proxy->mem_used('auth_query'), 0, 'no lookup request leaked (SHOW MEM auth_query used = 0)');
($rc, $out, $err) = login('q_scram', 'scram_pw2', 'slowdb');
is($rc, 0, 'a slow lookup still serves a client that waits') or diag($err);
is($proxy->safe_psql('postgres', 'SELECT 69'), '69', 'pgslab still serves');

# --- a reload while lookups run; a password pipelined before the request ----------------------
{
	my @socks;
	for my $i (1 .. 4) {
		my $s = raw_connect($proxy->host, $proxy->port);
		raw_send($s, startup_packet(user => 'q_md5', database => 'slowdb'));
		push @socks, $s;
	}
	$proxy->reload;
	my $all = 1;
	for my $s (@socks) {
		my $o2 = read_outcome($s, 10);
		$all = 0 unless defined $o2->{auth} && $o2->{auth} == 10;
		close $s;
	}
	ok($all, 'lookups in flight across a RELOAD still answer (a SASL request to each client)');
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, startup_packet(user => 'q_scram', database => 'slowdb')
		. frontend_message('p', "scram_pw2\0"));
	my $o3 = read_outcome($s, 10);
	close $s;
	ok($o3->{error} && !$o3->{ready}, 'a password pipelined while the lookup runs: refused, not a crash')
		or diag(describe_outcome($o3));
	is($proxy->safe_psql('postgres', 'SELECT 1'), '1', '... pgslab serves on');
}

# --- auth_dbname naming the console, globally: refused by SET and by RELOAD, as PgBouncer ------
($rc, $out, $err) = $proxy->psql('pgslab', "SET auth_dbname = 'pgbouncer'", user => $node->superuser,
	password => PgSlab::Test::Cluster::SUPERUSER_PW);
like($err, qr/cannot use the reserved "pgbouncer" database as an auth_dbname/, 'SET auth_dbname = pgbouncer: refused')
	or diag($err);
$proxy->set(auth_dbname => 'pgbouncer');
$proxy->write_config;
$n_rsv = count_log($rsv_re);
($rc, $out, $err) = $proxy->psql('pgslab', 'RELOAD', user => $node->superuser,
	password => PgSlab::Test::Cluster::SUPERUSER_PW);
like($err, qr/RELOAD failed, see logs for additional details/, 'RELOAD with auth_dbname = pgbouncer: refused')
	or diag($err);
ok($proxy->wait_for_log(qr/reload failed, the running configuration stays in force: .*cannot use the reserved "pgbouncer" database as an auth_dbname/),
	'... PgBouncer\'s words in the log');
sleep(0.3);
is(count_log($rsv_re), $n_rsv + 1, '... once');
$proxy->set(auth_dbname => undef);
$proxy->write_config;
($rc, $out, $err) = login('q_scram', 'scram_pw2');
is($rc, 0, '... and the running configuration serves on') or diag($err);

# --- auth_type md5 with a SCRAM-stored user: SCRAM is used, as PgBouncer ---------------------
$proxy->set(auth_type => 'md5');
$proxy->reload;
ok($proxy->wait_for_log(qr/configuration reloaded/), 'reloaded with auth_type md5');
($rc, $out, $err) = login('q_md5', 'md5_pw');
is($rc, 0, 'auth_type md5: md5-stored auth_query user logs in') or diag($err);
($rc, $out, $err) = login('q_scram', 'scram_pw2');
is($rc, 0, 'auth_type md5: SCRAM-stored auth_query user logs in with SCRAM') or diag($err);
($rc, $out, $err) = login('no_such_role', 'x');
like($err, qr/password authentication failed for user "no_such_role"/, 'auth_type md5: unknown user reads as a wrong password')
	or diag($err);

# --- auth_type trust: a role without a password is a user with an empty secret, as PgBouncer ------
$proxy->set(auth_type => 'trust');
$proxy->reload;
ok($proxy->wait_for_log(qr/configuration reloaded.*\n(?s:.*)configuration reloaded/), 'reloaded with auth_type trust');
($rc, $out, $err) = login('q_nopw', undef);
is($rc, 0, 'auth_type trust: a password-less role found by auth_query logs in') or diag($err);
is($out =~ s/\s+//gr, 'q_nopw', '... as q_nopw');
($rc, $out, $err) = login('no_such_role', undef);
isnt($rc, 0, 'auth_type trust: a role auth_query does not find is still refused');
# trust admits every name that exists: saying which do not tells a stranger nothing more
like($err, qr/FATAL:  no such user$/m, '... with PgBouncer\'s "no such user" (trust only)') or diag($err);
ok($proxy->wait_for_log(qr/C-\d+: postgres\/no_such_role\@\S+ closing because: no such user \(age=/),
	'... logged as PgBouncer logs it');

is($proxy->stop, 0, 'clean exit');
my $log = $proxy->log_content;
unlike($log, qr/AddressSanitizer|runtime error/, 'no sanitizer report');

# --- a database at max_db_connections whose pools each keep min_pool_size above it: the
# auth pool and every user's pool share 2 slots; each login still gets its lookup and then
# a server (the slot a pool hands over goes to the pool that asked, not back to a pool
# that only refills its minimum)
{
	my $pf = PgSlab::Test::Proxy->new(cluster => $node, name => 'p069full',
		databases => { fulldb => "$base max_db_connections=2 min_pool_size=5 pool_size=5" },
		settings  => { auth_type => 'scram-sha-256', auth_user => 'authu', pool_mode => 'session' },
		userlist  => [ [ 'authu', 'authu_pw' ] ]);
	$pf->start;
	for my $u ('q_scram', 'q_many1', 'q_many2', 'q_scram', 'q_many3') {
		my $pw = $u eq 'q_scram' ? 'scram_pw2' : 'many_pw';
		my ($r, $o, $e) = $pf->psql('fulldb', 'SELECT current_user', user => $u, password => $pw,
			timeout => 10, params => { connect_timeout => 8 });
		is($r == 0 ? $o =~ s/\s+//gr : $e, $u, "full database (2 slots, min_pool_size 5): $u logs in");
	}
	is($pf->stop, 0, 'full-database proxy: clean exit');
}
done_testing();
