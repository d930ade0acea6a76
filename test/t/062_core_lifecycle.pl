# 062_core_lifecycle.pl -- issue 10: connection lifecycle.  #6 unauthenticated leak after a
# NegotiateProtocolVersion write fails, #7 client counter going negative, #9 pipelining before
# AuthenticationOk on a cold pool, #10 clients waiting for a cold pool's first server,
# #11 "*" fallback databases created before authentication / autodb_idle_timeout,
# #12 accept() on EMFILE and max_client_conn before the startup packet.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c062');
$node->start;
$node->create_user('app', 'app_pw');
$node->safe_psql('postgres', 'CREATE DATABASE autodb_x');
my $cport = $node->port;

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

# --- #6: protocol 3.1 / _pq_ options, then a reset: no leak -------------------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p062_6',
		settings => { pool_mode => 'transaction', max_client_conn => 1000 },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$proxy->start;
	my $base_client = $proxy->mem_used('client');
	my $base_login = $proxy->mem_used('client_login');
	my $body31 = pack('N', 196609) . "user\0app\0database\0postgres\0\0";
	my $pkt31 = pack('N', 4 + length $body31) . $body31;
	my $pkt_pq = startup_packet(user => 'app', database => 'postgres', '_pq_.foo' => 'bar');
	my $sent = 0;
	for my $i (1 .. 500) {
		my $s = eval { raw_connect($proxy->host, $proxy->port) } or last;
		$sent += raw_send($s, $i % 2 ? $pkt31 : $pkt_pq);
		raw_reset($s);
	}
	is($sent, 500, '#6: 500 startups with protocol 3.1 or a _pq_ option sent, each reset at once');
	ok($proxy->is_running, '#6: pgslab still running');
	my ($c, $l);
	poll(sub {
		$c = $proxy->mem_used('client');
		$l = $proxy->mem_used('client_login');
		$c == $base_client && $l == $base_login;
	}, 5);
	is($c, $base_client, '#6: SHOW MEM client used back to its baseline');
	is($l, $base_login, '#6: SHOW MEM client_login used back to its baseline');
	# Sanity: the negotiation itself is answered (NegotiateProtocolVersion) when nobody resets.
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, $pkt31);
	my ($t) = read_msg($s, 5);
	is($t, 'v', '#6: a 3.1 startup gets a NegotiateProtocolVersion');
	close $s;
	$proxy->stop;
}

# --- #7: max_client_conn after 50 garbage clients reset at once ---------------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p062_7',
		settings => { pool_mode => 'transaction', max_client_conn => 5, auth_type => 'plain' },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$proxy->start;
	for my $i (1 .. 50) {
		my $s = eval { raw_connect($proxy->host, $proxy->port) } or last;
		raw_send($s, $i % 2
			? startup_packet(user => 'app', database => 'postgres', no_such_param => 'x')
			: pack('N N', 3, 196608));
		raw_reset($s);
	}
	sleep(0.5);
	ok($proxy->is_running, '#7: pgslab still running after 50 garbage clients');
	my (@held, $ready, $refused) = ();
	($ready, $refused) = (0, 0);
	my @msgs;
	for my $i (1 .. 10) {
		my $s = raw_connect($proxy->host, $proxy->port);
		my $o = password_login($s, 'app', 'app_pw');
		if ($o->{ready}) {
			$ready++;
			push @held, $s;
		} elsif ($o->{error}) {
			$refused++ if ($o->{error}{M} // '') =~ /no more connections/ || $o->{error}{C} eq '53300';
			push @msgs, describe_outcome($o);
			close $s;
		} else {
			push @msgs, describe_outcome($o);
			push @held, $s;
		}
	}
	cmp_ok($ready, '<=', 5, "#7: with max_client_conn = 5, at most 5 of 10 clients log in (got $ready)");
	cmp_ok($refused, '>=', 5, "#7: the 6th and later are refused with \"no more connections allowed\" (got $refused)")
	    or diag(join("\n", @msgs));
	close $_ for @held;
	$proxy->stop;
}

# --- #9: password and Query in one write on a cold pool -----------------------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p062_9',
		settings => { pool_mode => 'transaction', auth_type => 'plain' },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$proxy->start;
	my $s = raw_connect($proxy->host, $proxy->port);
	raw_send($s, startup_packet(user => 'app', database => 'postgres'));
	my $o = read_outcome($s, 5);
	is($o->{auth}, 3, '#9: cleartext password requested');
	raw_send($s, frontend_message('p', "app_pw\0") . frontend_message('Q', "SELECT 1\0"));
	my $r = read_until_n_ready($s, 2, 5);
	my @types = @{ $r->{types} };
	my $seq = join(' ', grep { $_ ne 'S' } @types);	# ParameterStatus count varies
	is($seq, 'R K Z T D C Z',
		'#9: AuthenticationOk, (ParameterStatus), BackendKeyData, ReadyForQuery, then the query result');
	ok(scalar(grep { $_ eq 'S' } @types) >= 2, '#9: ParameterStatus messages sent in the welcome');
	my $p;
	poll(sub {
		($p) = grep { $_->{database} eq 'postgres' && $_->{user} eq 'app' } $proxy->admin_hash('SHOW POOLS');
		$p && $p->{cl_waiting} == 0;
	}, 3);
	is($p && $p->{cl_waiting}, 0, '#9: SHOW POOLS cl_waiting is 0 afterwards');
	close $s;
	$proxy->stop;
}

# --- #11: "*" fallback database: nothing created before authentication; autodb_idle_timeout ------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p062_11',
		databases => {
			postgres => "host=127.0.0.1 port=$cport dbname=postgres",
			'*'      => "host=127.0.0.1 port=$cport",
		},
		settings => { pool_mode => 'transaction', auth_type => 'md5', autodb_idle_timeout => 1,
			max_client_conn => 500 },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$proxy->start;
	my $before = scalar $proxy->admin('SHOW DATABASES');
	my $failed = 0;
	for my $i (1 .. 300) {
		my $s = eval { raw_connect($proxy->host, $proxy->port) } or last;
		my $o = password_login($s, 'app', 'wrong', database => "nodb_$i");
		$failed++ if $o->{error} && !$o->{ready};
		close $s;
	}
	is($failed, 300, '#11: 300 logins with a wrong password to 300 database names refused');
	my $after = scalar $proxy->admin('SHOW DATABASES');
	is($after, $before, '#11: SHOW DATABASES row count unchanged after 300 failed logins');

	my $s = raw_connect($proxy->host, $proxy->port);
	my $o = password_login($s, 'app', 'app_pw', database => 'autodb_x');
	ok($o->{ready}, '#11: login to autodb_x through the "*" entry') or diag(describe_outcome($o));
	raw_query($s, 'SELECT current_database()');
	my $r = read_until_ready($s, 5);
	is_deeply($r->{rows}, [ [ 'autodb_x' ] ], '#11: connected to autodb_x');
	$proxy->wait_for_log(qr/registered new auto-database: autodb_x/);
	my %reg = map { $_ => 1 } $proxy->log_content =~ /registered new auto-database: (\S+)/g;
	my @reg = sort keys %reg; # the log file and stderr both have it
	is("@reg", 'autodb_x', '"registered new auto-database: autodb_x" logged, and none for the failed logins');
	ok(scalar(grep { $_->[0] eq 'autodb_x' } $proxy->admin('SHOW DATABASES')),
		'#11: autodb_x listed while its client is connected');
	close $s;
	my $gone = poll(sub { !grep { $_->[0] eq 'autodb_x' } $proxy->admin('SHOW DATABASES') }, 8);
	ok($gone, '#11: with autodb_idle_timeout = 1, autodb_x leaves SHOW DATABASES after its clients left');
	$proxy->stop;
}

# --- #12: EMFILE; max_client_conn counted before the startup packet --------------------------------
sub proc_cpu_ticks
{
	my ($pid) = @_;
	open(my $fh, '<', "/proc/$pid/stat") or return undef;
	my $st = <$fh>;
	close $fh;
	$st =~ s/^.*\)\s+//s;
	my @f = split ' ', $st;
	return $f[11] + $f[12];	# utime + stime (fields 14 and 15)
}

sub socket_fds
{
	my ($pid) = @_;
	opendir(my $d, "/proc/$pid/fd") or return undef;
	my $n = grep { (readlink("/proc/$pid/fd/$_") // '') =~ /^socket:/ } readdir $d;
	closedir $d;
	return $n;
}

{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p062_12',
		wrapper  => [ 'prlimit', '--nofile=40:40' ],
		settings => { pool_mode => 'transaction', max_client_conn => 1000, auth_type => 'plain' },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$proxy->start;
	my $pid = $proxy->pid;
	my ($rc, $lim) = (0, PgSlab::Test::Cluster::_slurp("/proc/$pid/limits"));
	like($lim, qr/Max open files\s+40\s+40/, '#12: pgslab runs with an open-file limit of 40');
	my $count_accept = sub {
		my $n = `grep -c accept '${\ $proxy->logfile}' 2>/dev/null`;
		chomp $n;
		return $n || 0;
	};
	my $log_before = $count_accept->();
	my @idle;
	for (1 .. 60) {
		my $s = eval { raw_connect($proxy->host, $proxy->port) } or last;
		push @idle, $s;
	}
	cmp_ok(scalar @idle, '>=', 50, '#12: opened ' . scalar(@idle) . ' idle TCP connections');
	sleep(0.5);
	my $t0 = proc_cpu_ticks($pid);
	sleep(2);
	my $t1 = proc_cpu_ticks($pid);
	my $hz = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
	my $cpu = defined $t0 && defined $t1 ? ($t1 - $t0) / $hz : 99;
	cmp_ok($cpu, '<', 0.5, "#12: pgslab does not spin on EMFILE (CPU ${cpu}s over 2 s)");
	my $log_after = $count_accept->();
	cmp_ok($log_after - $log_before, '<', 20, '#12: fewer than 20 "accept" log lines ('
		. ($log_after - $log_before) . ')');
	close $_ for @idle;
	@idle = ();
	my $ok = poll(sub {
		my $s = eval { raw_connect($proxy->host, $proxy->port) } or return 0;
		my $o = password_login($s, 'app', 'app_pw');
		close $s;
		$o->{ready};
	}, 8);
	ok($ok, '#12: after the idle connections closed, logins work again');
	ok($proxy->is_running, '#12: pgslab still running');
	$proxy->stop;
}

{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p062_12b',
		settings => { pool_mode => 'transaction', max_client_conn => 3, auth_type => 'plain',
			client_login_timeout => 60 },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$proxy->start;
	my $pid = $proxy->pid;
	my $fd0 = socket_fds($pid);
	my @first = map { raw_connect($proxy->host, $proxy->port) } 1 .. 3;
	my @more;
	for (1 .. 17) {
		my $s = eval { raw_connect($proxy->host, $proxy->port) } or last;
		push @more, $s;
	}
	sleep(1);
	my $fd1 = socket_fds($pid);
	cmp_ok($fd1 - $fd0, '<=', 5,
		"#12: max_client_conn = 3: 20 idle connections without a startup packet do not all hold a socket in pgslab ($fd0 -> $fd1)");
	# The 4th and later: refused (an error or EOF without sending anything) or never accepted.
	my $o = read_outcome($more[0], 2);
	ok(!$o->{ready}, '#12: the 4th connection is not served');
	# The first three are unaffected.
	close $_ for @more;
	my $s = $first[0];
	my $ol = do {
		raw_send($s, startup_packet(user => 'app', database => 'postgres'));
		my $x = read_outcome($s, 5);
		raw_send($s, frontend_message('p', "app_pw\0")) if ($x->{auth} // 0) == 3;
		read_outcome($s, 5);
	};
	ok($ol->{ready}, '#12: one of the first three idle connections logs in') or diag(describe_outcome($ol));
	close $_ for @first;
	$proxy->stop;
}

# --- #10: PostgreSQL down at first; waiting clients are served once it is up -------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p062_10',
		settings => { pool_mode => 'transaction', auth_type => 'plain', server_login_retry => 1,
			client_login_timeout => 60, query_wait_timeout => 60, server_connect_timeout => 3 },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$node->stop;
	$proxy->start;
	my @c;
	for (1 .. 3) {
		my $s = raw_connect($proxy->host, $proxy->port);
		raw_send($s, startup_packet(user => 'app', database => 'postgres'));
		my $o = read_outcome($s, 5);
		raw_send($s, frontend_message('p', "app_pw\0")) if ($o->{auth} // 0) == 3;
		push @c, $s;
	}
	sleep(2);
	$node->start;
	my $served = 0;
	my @d;
	my $deadline = time + 15;
	for my $s (@c) {
		my $left = $deadline - time;
		my $o = read_outcome($s, $left > 0.5 ? $left : 0.5);
		if ($o->{ready}) {
			raw_query($s, 'SELECT 10');
			my $r = read_until_ready($s, 5);
			$served++ if $r->{types} eq 'T D C Z';
			push @d, $r->{types};
		} else {
			push @d, describe_outcome($o);
		}
	}
	is($served, 3, '#10: the 3 clients that waited for the first server get their welcome and a result')
	    or diag(join("\n", @d));
	close $_ for @c;
	$proxy->stop;
}

done_testing();
