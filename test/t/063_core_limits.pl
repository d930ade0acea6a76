# 063_core_limits.pl -- issue 10: #15 log forgery through startup values, #16 SQL injection
# through the parameter-sync SET and long values skipped, #17 unimplemented settings accepted
# silently, #19 smaller defects (server_reset_query_always, SET max_packet_size above the cap,
# concurrent PAUSE, a second instance on the same socket/pidfile, console replies past 4 MiB).

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $LINE_RE = qr/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \S+ \[\d+\] (?:LOG|WARNING|ERROR|FATAL|DEBUG|NOISE) /;

my $node = PgSlab::Test::Cluster->new(name => 'c063');
$node->start;
$node->create_user('app', 'app_pw');
$node->safe_psql('postgres', 'CREATE DATABASE scs');
$node->safe_psql('postgres', 'ALTER DATABASE scs SET standard_conforming_strings = off');
$node->safe_psql('postgres', 'ALTER DATABASE scs OWNER TO app');
my $cport = $node->port;
my ($su, $supw) = ($node->superuser, $node->superuser_password);

sub poll
{
	my ($cond, $timeout) = @_;
	my $deadline = time + $timeout;
	while (1) {
		return 1 if $cond->();
		return 0 if time >= $deadline;
		sleep(0.1);
	}
}

sub slurp { PgSlab::Test::Cluster::_slurp($_[0]) }

# --- #15: newlines in startup values must not forge log lines ------------------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p063_15',
		settings => { pool_mode => 'transaction', log_connections => 1, log_disconnections => 1,
			auth_type => 'md5' },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$proxy->start;
	my @cases = (
		[ user => "x\nLOG: forged user", database => 'postgres' ],
		[ user => 'app', database => "db\nLOG: forged database" ],
		[ user => 'app', database => 'postgres', "foo\nLOG: forged name" => 'v' ],
		[ user => 'app', database => 'postgres', application_name => "a\nLOG: forged value" ],
		[ user => 'app', database => 'postgres', application_name => "b\rLOG: forged cr" ],
	);
	for my $kv (@cases) {
		my $s = raw_connect($proxy->host, $proxy->port);
		raw_send($s, startup_packet(@$kv));
		my $o = read_outcome($s, 5);
		if (($o->{auth} // 0) == 5 && !$o->{error}) {
			raw_send($s, frontend_message('p',
				md5_password('app', 'app_pw', substr($o->{auth_body}, 0, 4)) . "\0"));
			$o = read_outcome($s, 5);
		}
		close $s;
	}
	# a logged-in client with a newline in a tracked value, then a query and a disconnect
	my $s = raw_connect($proxy->host, $proxy->port);
	my $o = password_login($s, 'app', 'app_pw', application_name => "c\nLOG: forged after login");
	raw_query($s, 'SELECT 1') if $o->{ready};
	read_until_ready($s, 5) if $o->{ready};
	close $s;
	sleep(0.5);
	$proxy->stop;
	my $log = slurp($proxy->logfile);
	my @lines = split /\n/, $log;
	ok(scalar(@lines) > 3, '#15: pgslab wrote a log');
	my @bad = grep { $_ !~ $LINE_RE } @lines;
	is(scalar(@bad), 0, '#15: every log line starts with the timestamp prefix')
	    or diag(join("\n", map { "  bad line: $_" } @bad[0 .. ($#bad < 9 ? $#bad : 9)]));
	my @forged = grep { /^LOG: forged/ } @lines;
	is(scalar(@forged), 0, '#15: no line starts with the forged text');
	unlike($log, qr/\r/, '#15: no raw carriage return in the log');
}

# --- #16: the parameter-sync SET with standard_conforming_strings = off -----------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p063_16',
		databases => { scs => "host=127.0.0.1 port=$cport dbname=scs" },
		settings => { pool_mode => 'transaction', default_pool_size => 1,
			track_extra_parameters => 'search_path' },
		userlist => userlist_from_cluster($node, 'app'));
	$proxy->start;
	my $evil = q{x\\'; create table injected(i int); --};
	my $a = raw_connect($proxy->host, $proxy->port);
	my $o = scram_login($a, 'app', 'app_pw', database => 'scs', application_name => $evil);
	ok($o->{ready}, '#16: client A logged in with the hostile application_name') or diag(describe_outcome($o));
	my $b = raw_connect($proxy->host, $proxy->port);
	$o = scram_login($b, 'app', 'app_pw', database => 'scs', application_name => 'bee');
	ok($o->{ready}, '#16: client B logged in') or diag(describe_outcome($o));
	my @seen;
	for my $round (1 .. 3) {
		for my $pair ([ $b, 'bee' ], [ $a, $evil ]) {
			raw_query($pair->[0], q{SELECT current_setting('application_name'), current_setting('standard_conforming_strings')});
			my $r = read_until_ready($pair->[0], 5);
			push @seen, [ $pair->[1], $r->{rows}[0] ];
		}
	}
	my $sc = $seen[1][1] ? $seen[1][1][1] : '';
	is($sc, 'off', '#16: the server runs with standard_conforming_strings = off');
	is($seen[-1][1] && $seen[-1][1][0], $evil, '#16: client A sees exactly the application_name it sent');
	is($seen[-2][1] && $seen[-2][1][0], 'bee', '#16: client B sees its own application_name');
	my $inj = $node->safe_psql('scs', q{SELECT to_regclass('injected') IS NULL});
	is($inj, 't', '#16: table "injected" does not exist (no SQL injection through the SET)');
	close $a;
	close $b;

	# A 3,000-byte value of a tracked parameter is synced, not skipped.
	my $long = 'sp_' . ('x' x 2997);
	$a = raw_connect($proxy->host, $proxy->port);
	$o = scram_login($a, 'app', 'app_pw', database => 'scs', search_path => $long);
	ok($o->{ready}, '#16: client A logged in with a 3,000-byte search_path') or diag(describe_outcome($o));
	$b = raw_connect($proxy->host, $proxy->port);
	$o = scram_login($b, 'app', 'app_pw', database => 'scs', search_path => 'public');
	my ($va, $vb);
	for my $round (1 .. 2) {
		raw_query($b, q{SELECT current_setting('search_path')});
		$vb = read_until_ready($b, 5)->{rows}[0];
		raw_query($a, q{SELECT current_setting('search_path')});
		$va = read_until_ready($a, 5)->{rows}[0];
	}
	is($vb && $vb->[0], 'public', '#16: client B sees search_path public');
	ok($va && $va->[0] eq $long, '#16: client A sees its 3,000-byte search_path (synced, not skipped)')
	    or diag('client A saw: ' . substr($va ? $va->[0] // 'NULL' : 'nothing', 0, 80));
	close $a;
	close $b;
	$proxy->stop;
}

# --- #17: unimplemented settings ------------------------------------------------------------------
for my $bad ([ client_tls_sslmode => 'require' ], [ auth_type => 'hba' ], [ auth_type => 'cert' ],
	     [ auth_type => 'pam' ], [ auth_type => 'ldap' ]) {
	my ($k, $v) = @$bad;
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => "p063_17_$v",
		settings => { $k => $v, auth_hba_file => undef });
	my ($rc, $out, $err) = PgSlab::Test::Cluster::run_command([ $proxy->binary, $proxy->ini_path ],
		timeout => 3, cwd => $proxy->basedir);
	ok($rc != 0 && $rc != 124, "#17: pgslab refuses to start with $k = $v (exit $rc)");
	like("$out\n$err", qr/\Q$k\E/, "#17: the error names $k") or diag("stderr: $err");
}
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p063_17d',
		settings => { dns_zone_check_period => 30, pidfile => undef });
	my $pidfile = $proxy->basedir . '/pgslab.pid';
	$proxy->set(pidfile => $pidfile);
	$proxy->write_config;
	my ($rc, $out, $err) = PgSlab::Test::Cluster::run_command([ $proxy->binary, '-d', $proxy->ini_path ],
		timeout => 10, cwd => $proxy->basedir);
	is($rc, 0, '#17: pgslab -d with an unsupported harmless setting starts');
	like("$out\n$err", qr/dns_zone_check_period/, '#17: the warning naming dns_zone_check_period reaches the terminal before the fork')
	    or diag("stdout: $out\nstderr: $err");
	poll(sub { -s $pidfile }, 5);
	my $pid = slurp($pidfile);
	$pid =~ s/\s+//g;
	if ($pid =~ /^\d+$/ && $pid > 1) {
		kill 'TERM', $pid;
		poll(sub { !kill(0, $pid) }, 10);
		kill 'KILL', $pid if kill(0, $pid);
	}
}

# --- #19 ---------------------------------------------------------------------------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p063_19',
		settings => { pool_mode => 'transaction', default_pool_size => 1,
			server_reset_query_always => 1, server_reset_query => 'DISCARD ALL',
			pidfile => undef });
	my $pidfile = $proxy->basedir . '/pgslab.pid';
	$proxy->set(pidfile => $pidfile);
	$proxy->start;

	# (a) server_reset_query_always in transaction mode: A's session state is not B's.
	my $a = raw_connect($proxy->host, $proxy->port);
	scram_login($a, $su, $supw);
	# (the reset runs on every release, so A sees its SET only within its
	# transaction, as with PgBouncer)
	raw_query($a, q{BEGIN; SET myapp.flag = 'from_a'; SELECT current_setting('myapp.flag', true); COMMIT});
	my $r = read_until_ready($a, 5);
	is($r->{rows}[0] && $r->{rows}[0][0], 'from_a', '#19a: client A set myapp.flag');
	my $b = raw_connect($proxy->host, $proxy->port);
	scram_login($b, $su, $supw);
	raw_query($b, q{SELECT coalesce(current_setting('myapp.flag', true), '')});
	$r = read_until_ready($b, 5);
	my $vb = $r->{rows}[0] ? $r->{rows}[0][0] : undef;
	ok(defined $vb && $vb ne 'from_a',
		'#19a: server_reset_query_always = 1: client B does not see client A\'s SET (reset on every release)')
	    or diag('client B saw: ' . ($vb // 'nothing'));
	close $a;
	close $b;

	# (b) SET max_packet_size above the 1 GiB cap is refused.
	my $ok = eval { $proxy->admin('SET max_packet_size = 2147483647'); 1 };
	ok(!$ok, '#19b: console SET max_packet_size = 2147483647 is refused with an error');
	my ($row) = grep { $_->{key} eq 'max_packet_size' } $proxy->admin_hash('SHOW CONFIG');
	isnt($row && $row->{setting}, '2147483647', '#19b: max_packet_size is not 2147483647');

	# (c) PAUSE from 40 console connections while a transaction is open.
	my $tx = raw_connect($proxy->host, $proxy->port);
	scram_login($tx, $su, $supw);
	raw_query($tx, 'BEGIN');
	$r = read_until_ready($tx, 5);
	is($r->{types}, 'C Z', '#19c: a transaction is open');
	my @con;
	for (1 .. 40) {
		my $s = raw_connect($proxy->host, $proxy->port);
		my $o = scram_login($s, $su, $supw, database => 'pgslab');
		push @con, $s if $o->{ready};
	}
	is(scalar @con, 40, '#19c: 40 console connections');
	raw_query($_, 'PAUSE') for @con;
	my $early = 0;
	my $deadline = time + 2;
	my %got;
	while (time < $deadline) {
		my $sel = IO::Select->new(grep { !$got{$_} } @con);
		last unless $sel->count;
		my @rd = $sel->can_read($deadline - time);
		for my $s (@rd) {
			my ($t, $body) = read_msg($s, 1);
			$got{$s} = 1 if $t eq 'C' || $t eq 'E' || $t eq 'EOF' || $t eq 'Z';
			$early++ if $t eq 'C' && $body =~ /^PAUSE/;
		}
	}
	is($early, 0, '#19c: no PAUSE completes while the transaction is open');
	raw_query($tx, 'COMMIT');
	read_until_ready($tx, 5);
	close $tx;
	close $_ for @con;
	eval { $proxy->admin('RESUME') };
	$proxy->stop;
}

# (c, continued) 40 databases, each with an open transaction, each paused from its own console
# connection: more waiters than pgslab's waiter table holds.
{
	my %dbs;
	$dbs{"pdb_$_"} = "host=127.0.0.1 port=$cport dbname=postgres" for 1 .. 40;
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p063_19c',
		databases => \%dbs,
		settings => { pool_mode => 'transaction', default_pool_size => 2, max_client_conn => 200 });
	$proxy->start;
	my (@tx, @con);
	for my $i (1 .. 40) {
		my $t = raw_connect($proxy->host, $proxy->port);
		scram_login($t, $su, $supw, database => "pdb_$i");
		raw_query($t, 'BEGIN');
		my $r = read_until_ready($t, 5);
		push @tx, $t if $r->{types} eq 'C Z';
	}
	is(scalar @tx, 40, '#19c: 40 databases with an open transaction each');
	for my $i (1 .. 40) {
		my $s = raw_connect($proxy->host, $proxy->port);
		my $o = scram_login($s, $su, $supw, database => 'pgslab');
		push @con, $s if $o->{ready};
	}
	is(scalar @con, 40, '#19c: 40 console connections');
	raw_query($con[$_ - 1], "PAUSE pdb_$_") for 1 .. 40;
	my ($early, %got, @other) = (0);
	my $deadline = time + 2;
	while (time < $deadline) {
		my $sel = IO::Select->new(grep { !$got{$_} } @con);
		last unless $sel->count;
		my @rd = $sel->can_read($deadline - time);
		for my $s (@rd) {
			my ($t, $body) = read_msg($s, 1);
			$got{$s} = 1 if $t eq 'C' || $t eq 'E' || $t eq 'EOF' || $t eq 'Z';
			$early++ if $t eq 'C' && $body =~ /^PAUSE/;
			push @other, $t eq 'E' ? parse_fields($body)->{M} : $t if $t ne 'C' && $t ne 'Z';
		}
	}
	is($early, 0, '#19c: no "PAUSE db" completes while that database\'s transaction is open (40 waiters)')
	    or diag(join(', ', @other));
	raw_query($_, 'COMMIT') for @tx;
	read_until_ready($_, 5) for @tx;
	close $_ for @tx, @con;
	$proxy->admin("RESUME pdb_$_") for 1 .. 40;

	# (d) a second instance with the same socket dir, port and pidfile.
	# Same port, socket dir and pidfile; TCP listening off, so only the Unix
	# socket and the pidfile can collide.
	my $ini2 = $proxy->basedir . '/second.ini';
	(my $text2 = $proxy->config_text) =~ s/^listen_addr = .*$/listen_addr = /m;
	$text2 =~ s/^logfile = .*$/logfile = ${\ $proxy->basedir}\/second.log/m;
	PgSlab::Test::Cluster::_write_file($ini2, $text2);
	my ($rc, $out, $err) = PgSlab::Test::Cluster::run_command([ $proxy->binary, $ini2 ],
		timeout => 5, cwd => $proxy->basedir);
	ok($rc != 0 && $rc != 124, "#19d: a second pgslab with the same port/socket/pidfile fails (exit $rc)");
	ok($proxy->is_running, '#19d: the first instance is still running');
	ok(-S $proxy->socket_dir . '/.s.PGSQL.' . $proxy->port, '#19d: the first instance\'s Unix socket file still exists');
	my ($prc, $pout, $perr) = $proxy->psql('pdb_1', 'SELECT 19', host => $proxy->socket_dir);
	is($pout, '19', '#19d: the first instance still accepts psql over its Unix socket') or diag($perr);
	$proxy->stop;
}

# (e) a console reply larger than 4 MiB: SHOW DATABASES with 40,000 long entries, read by a
# client that does not read for a second (so that the reply piles up inside pgslab).
{
	my %dbs = (postgres => "host=127.0.0.1 port=$cport dbname=postgres");
	my $pad = 'd' x 48;
	my $upad = 'u' x 55;
	for my $i (1 .. 40000) {
		$dbs{"db_${pad}_$i"} = "host=127.0.0.1 port=$cport dbname=x_${pad}_$i user=${upad}_$i";
	}
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p063_19e',
		databases => \%dbs, settings => { pool_mode => 'transaction' });
	$proxy->start(timeout => 30);
	my $s = raw_connect($proxy->host, $proxy->port);
	my $o = scram_login($s, $su, $supw, database => 'pgslab');
	ok($o->{ready}, '#19e: console login') or diag(describe_outcome($o));
	raw_query($s, 'SHOW DATABASES');
	sleep(1);
	my ($rows, $bytes, $last) = (0, 0, '');
	my $deadline = time + 30;
	while (time < $deadline) {
		my ($t, $b) = read_msg($s, 10);
		$last = $t;
		last if $t eq 'Z' || $t eq 'EOF' || $t eq 'TIMEOUT' || $t eq 'BADLEN';
		if ($t eq 'D') { $rows++; $bytes += 5 + length $b }
		last if $t eq 'E';
	}
	cmp_ok($bytes, '>', 4 * 1024 * 1024, "#19e: the SHOW DATABASES reply is larger than 4 MiB ($bytes bytes)");
	# 40,000 entries, postgres, and the console under both its names
	ok($rows == 40003 || $last eq 'E',
		"#19e: SHOW DATABASES past 4 MiB returns every row, or fails with an error ($rows rows of 40003, then $last)");
	close $s;
	$proxy->stop;
}

done_testing();
