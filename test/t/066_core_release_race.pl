# 066_core_release_race.pl -- issue 10, #5: the release race.  Between parsing a
# ReadyForQuery 'I' and the drain callback the client can still forward to its server;
# pool_release then closes that server as "unclean" without telling the client, and a slow
# reader that pipelines two large results hangs.  Transaction mode, one server.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c066');
$node->start;
our $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p066',
	settings => {
		pool_mode         => 'transaction',
		default_pool_size => 1,
		max_client_conn   => 100,
		query_wait_timeout => 20,
	});
$proxy->start;
my ($su, $supw) = ($node->superuser, $node->superuser_password);

sub login
{
	my $s = raw_connect($proxy->host, $proxy->port);
	my $o = scram_login($s, $su, $supw);
	die 'raw login failed: ' . describe_outcome($o) unless $o->{ready};
	return $s;
}

sub count_rows
{
	my ($v) = @_;
	return $node->safe_psql('postgres', "SELECT count(*) FROM t WHERE i = $v");
}

# Client B: SELECT <n> through pgslab within $timeout seconds.
sub select_via_proxy
{
	my ($n, $timeout) = @_;
	my $s = login();
	raw_query($s, "SELECT $n");
	my $r = read_until_ready($s, $timeout);
	close $s;
	return $r;
}

sub pool_row
{
	my ($r) = grep { $_->{database} eq 'postgres' && $_->{user} eq $su } $proxy->admin_hash('SHOW POOLS');
	return $r // {};
}

sub wait_pool
{
	my ($cond, $timeout) = @_;
	my $deadline = time + $timeout;
	my $r;
	while (1) {
		$r = pool_row();
		return $r if $cond->($r) || time >= $deadline;
		sleep(0.1);
	}
}

is(select_via_proxy(1, 5)->{types}, 'T D C Z', 'pool warmed up');

# --- #5: two large results pipelined, slow reader -------------------------------------------------
{
	my $a = login();
	my $q = "SELECT repeat('x', 1000) FROM generate_series(1, 20000)";
	raw_send($a, frontend_message('Q', "$q\0") . frontend_message('Q', "$q\0"));
	my $deadline = time + 40;
	my ($rows, $ready, $n, $last) = (0, 0, 0, '');
	sleep(1);	# let pgslab's and the kernel's buffers fill up
	while ($ready < 2 && time < $deadline) {
		my ($t) = read_msg($a, 10);
		$last = $t;
		last if $t eq 'EOF' || $t eq 'TIMEOUT' || $t eq 'BADLEN';
		$rows++ if $t eq 'D';
		$ready++ if $t eq 'Z';
		sleep(0.02) if ++$n % 500 == 0;
	}
	is($rows, 40000, '#5: slow reader of two pipelined large results gets all 40000 rows')
	    or diag("last message: $last");
	is($ready, 2, '#5: ... and two ReadyForQuery');
	close $a;
	is(select_via_proxy(5, 5)->{types}, 'T D C Z', '#5: the pool still serves a new client');

}

# The same race made likely: with pkt_buf = 1 MiB pgslab holds up to 1 MiB of the server's
# reply, so once the kernel's socket buffers towards the client are full it has parsed the
# final ReadyForQuery long before it can write it.  The client's second query must arrive in
# that window: the size of the first result is chosen from the measured capacity of the
# socket buffers between pgslab and this client (/proc/net/tcp).
sub tcp_queues
{
	# For the client's local port: (pgslab's tx_queue towards it, the client's rx_queue,
	# the sum of all queues on connections to or from the cluster's port).
	my ($port) = @_;
	my ($tx, $rx, $srv) = (0, 0, 0);
	my $cport = $node->port;
	open(my $fh, '<', '/proc/net/tcp') or return (0, 0, 1);
	while (<$fh>) {
		my @x = split;
		next unless @x > 4 && $x[1] =~ /:([0-9A-F]{4})$/;
		my $lp = hex $1;
		my ($rp) = $x[2] =~ /:([0-9A-F]{4})$/ or next;
		$rp = hex $rp;
		my ($t, $r) = map { hex } split /:/, $x[4];
		$rx = $r if $lp == $port && $rp == $proxy->port;
		$tx = $t if $rp == $port && $lp == $proxy->port;
		$srv += $t + $r if $lp == $cport || $rp == $cport;
	}
	close $fh;
	return ($tx, $rx, $srv);
}

{
	my $p5 = PgSlab::Test::Proxy->new(cluster => $node, name => 'p066_5',
		settings => { pool_mode => 'transaction', default_pool_size => 1, pkt_buf => 1048576 });
	$p5->start;
	local $proxy = $p5;
	# The client reads the first result (5 MB) 24 KiB at a time near its end, pausing after each step to
	# look at the kernel queues (/proc/net/tcp).  Once nothing is left queued between the
	# server and pgslab, pgslab has read, and parsed, the final ReadyForQuery; if R bytes are
	# still unread by the client and only q < R of them sit in the kernel queues towards it,
	# pgslab still holds the rest unwritten: the second query is sent right then.  A try that
	# misses the window (the last piece already written) is repeated with another size.
	my ($sent2, $rows2, $ready2, $last2, $n, $note) = (0, 0, 0, '', 0, '');
	for my $try (1 .. 8) {
		$n = 5000 + 97 * $try;
		my $q = "SELECT repeat('x', 1000) FROM generate_series(1, $n)";
		my $a2 = login();
		raw_query($a2, $q);
		my ($read, $total, $next) = (0, undef, 0);
		($rows2, $ready2, $last2) = (0, 0, '');
		my $dl = time + 30;
		while ($ready2 < ($sent2 ? 2 : 1) && time < $dl) {
			my ($t, $b) = read_msg($a2, 3);
			$last2 = $t;
			last if $t eq 'EOF' || $t eq 'TIMEOUT' || $t eq 'BADLEN';
			$read += 5 + length $b;
			$total //= (5 + length $b) + $n * 1011 + 5 + length("SELECT $n\0") + 6 if $t eq 'T';
			$rows2++ if $t eq 'D';
			$ready2++ if $t eq 'Z';
			next if $sent2 || !defined $total || $read < $next;
			sleep(0.05);
			my ($tx, $rx, $srv) = tcp_queues($a2->sockport);
			my $r = $total - $read;
			$next = $read + ($r - $tx - $rx > 1536 * 1024 ? 256 * 1024 : 24 * 1024);
			next if $srv > 0;
			if ($r - $tx - $rx > 0) {
				raw_query($a2, $q);
				$sent2 = 1;
				$note = "try $try: sent with $r bytes unread, " . ($tx + $rx) . ' in the kernel';
			} else {
				$next = $total + 1;	# missed: the rest is already written
			}
		}
		close $a2;
		last if $sent2;
	}
	ok($sent2, "#5: the second query was sent inside the window ($note)");
	ok($rows2 == 2 * $n && $ready2 == 2,
		'#5: a second query sent while pgslab holds the first ReadyForQuery unwritten is answered')
	    or diag("rows $rows2 of " . (2 * $n) . ", ready $ready2, last message $last2");
	$p5->stop;
}

ok($proxy->is_running, 'pgslab still running');
done_testing();
