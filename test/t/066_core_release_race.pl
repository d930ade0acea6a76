# 066_core_release_race.pl -- issue 10, #5: the release race.  Between parsing a
# ReadyForQuery 'I' and the drain callback the client can still forward to its server;
# pool_release then closes that server as "unclean" without telling the client, and a slow
# reader that pipelines two large results hangs.  Transaction mode, one server.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use IO::Socket::UNIX;
use Socket qw(SOCK_STREAM);
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

# The same race made likely: with pkt_buf = 1 MiB pgslab reads up to 1 MiB of the server's
# reply at once, and the client is on the Unix socket, whose kernel buffer is small (~200 KB)
# and never grows.  The client reads the first result (5 MB) 24 KiB at a time, pausing after
# each step: once nothing is left queued between the server and pgslab (/proc/net/tcp),
# pgslab has read and parsed the final ReadyForQuery; if fewer bytes sit in the client's
# socket (FIONREAD) than the client has yet to read, pgslab still holds the rest unwritten,
# and the second query is sent right then.  A try that misses that window is repeated.
use constant FIONREAD => 0x541B;

sub server_side_queued
{
	my $cport = $node->port;
	my $sum = 0;
	open(my $fh, '<', '/proc/net/tcp') or return 1;
	while (<$fh>) {
		my @x = split;
		next unless @x > 4 && $x[1] =~ /:([0-9A-F]{4})$/;
		my $lp = hex $1;
		my ($rp) = $x[2] =~ /:([0-9A-F]{4})$/ or next;
		$rp = hex $rp;
		my ($t, $r) = map { hex } split /:/, $x[4];
		$sum += $t + $r if $lp == $cport || $rp == $cport;
	}
	close $fh;
	return $sum;
}

sub inq
{
	my ($s) = @_;
	my $buf = pack('i', 0);
	ioctl($s, FIONREAD, $buf) or return 0;
	return unpack('i', $buf);
}

{
	my $p5 = PgSlab::Test::Proxy->new(cluster => $node, name => 'p066_5',
		settings => { pool_mode => 'transaction', default_pool_size => 1, pkt_buf => 1048576 });
	$p5->start;
	my $path = $p5->socket_dir . '/.s.PGSQL.' . $p5->port;
	my ($sent2, $rows2, $ready2, $last2, $n, $note, $misses) = (0, 0, 0, '', 0, '', 0);
	for my $try (1 .. 6) {
		$n = 5000 + 97 * $try;
		my $q = "SELECT repeat('x', 1000) FROM generate_series(1, $n)";
		my $a2 = IO::Socket::UNIX->new(Type => SOCK_STREAM(), Peer => $path)
		    or die "connect $path: $!";
		binmode $a2;
		my $o = scram_login($a2, $su, $supw);
		die 'raw login failed: ' . describe_outcome($o) unless $o->{ready};
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
			$next = $read + 24 * 1024;
			sleep(0.05);
			next if server_side_queued() > 0;
			my $r = $total - $read;
			my $k = inq($a2);
			if ($r - $k > 0) {
				raw_query($a2, $q);
				$sent2 = 1;
				$note = "try $try: sent with $r bytes unread, $k in the socket";
			} else {
				$misses++;
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
