# 086_peering.pl -- issue 15: peers.  Three pgslab processes share one TCP port (so_reuseport),
# each with its own peer_id and Unix socket; a CancelRequest that reaches a process other than
# the one its client is on is forwarded to the issuing peer (PgBouncer's key layout), at most
# three hops, and dropped with a log line when the key names no known peer or its count is spent.

use strict;
use warnings;

use IO::Socket::UNIX;
use Test::More;
use Time::HiRes qw(sleep time);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire qw(plain_login raw_query read_until_ready read_msg raw_send);

my $node = PgSlab::Test::Cluster->new(name => 'c086');
$node->start;
$node->safe_psql('postgres', "CREATE ROLE app LOGIN PASSWORD 'app_pw'");

my $port = PgSlab::Test::Cluster::get_free_port();
my %px;
for my $id (1 .. 3) {
	$px{$id} = PgSlab::Test::Proxy->new(cluster => $node, name => "p086_$id",
		settings => { listen_port => $port, so_reuseport => 1, peer_id => $id,
			pool_mode => 'transaction', auth_type => 'plain' },
		userlist => [ [ 'app', 'app_pw' ] ]);
}
for my $id (1 .. 3) {
	# every peer, this process's own id included (one file could serve all three)
	$px{$id}->set_peers(map { $_ => { host => $px{$_}->socket_dir, port => $port } } 1 .. 3);
	$px{$id}->start;
}

my @rows = $px{2}->admin_hash('SHOW PEERS');
is(scalar(@rows), 3, 'SHOW PEERS lists the [peers] entries');
is($rows[0]{peer_id} . '/' . $rows[0]{port}, "1/$port", '... with id and port');

# A CancelRequest to one process's own Unix socket.
sub cancel_via
{
	my ($id, $pid, $key) = @_;
	my $path = $px{$id}->socket_dir . "/.s.PGSQL.$port";
	my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM, Peer => $path) or die "$path: $!";
	raw_send($c, pack('N N N N', 16, 80877102, $pid, $key));
	my ($t) = read_msg($c, 3);
	close $c;
	return $t;
}

sub owner { my ($pid) = @_; return (($pid >> 16) & 0xff) | ((($pid >> 8) & 0xff) << 8) }

my ($host) = ($node->host);
my %seen;
for my $round (1 .. 6) {
	my ($s, $pid, $key) = plain_login($host, $port, 'postgres', 'app', 'app_pw');
	my $own = owner($pid);
	ok($own >= 1 && $own <= 3, "round $round: the key names the issuing peer ($own)");
	is($key & 3, 3, '... with the forwarding count at 3');
	$seen{$own}++;
	my $other = $own % 3 + 1;
	raw_query($s, 'SELECT pg_sleep(10)');
	sleep 0.3;
	cancel_via($other, $pid, $key);
	my $r = read_until_ready($s, 8);
	is($r->{error} && $r->{error}{C}, '57014',
		"... a cancel sent to peer $other is forwarded to peer $own and cancels");
	close $s;
}
note('clients landed on peers: ' . join(', ', map { "$_ => $seen{$_}" } sort keys %seen));

# A key whose count is spent is dropped, not forwarded again.
my ($s, $pid, $key) = plain_login($host, $port, 'postgres', 'app', 'app_pw');
my $own = owner($pid);
my $other = $own % 3 + 1;
raw_query($s, 'SELECT pg_sleep(1.5), 1');
sleep 0.2;
cancel_via($other, $pid, $key & ~3);
my $r = read_until_ready($s, 8);
ok(!$r->{error}, 'a cancel with its forwarding count spent does not cancel');
ok($px{$other}->wait_for_log(qr/TTL was exhausted/), '... and the peer that got it says why');

# A key naming no known peer is dropped.
my $bogus = ($pid & 0xff0000ff) | (9 << 16);
cancel_via($other, $bogus, $key);
ok($px{$other}->wait_for_log(qr/could not find peer 9/), 'a key naming an unknown peer: dropped, logged');
raw_query($s, 'SELECT 5');
$r = read_until_ready($s, 5);
is($r->{rows}[0][0], '5', 'the client is untouched');
close $s;

# [peers] errors refuse the file.
my $bad = PgSlab::Test::Proxy->new(cluster => $node, name => 'p086_bad',
	settings => { peer_id => 1 });
$bad->set_peers(0 => { host => '/tmp', port => 1 });
$bad->write_config;
isnt(system($bad->binary . ' ' . $bad->ini_path . ' >' . $bad->outfile . ' 2>&1'), 0,
	'a peer id of 0 refuses the file');
$bad->set_peers(0 => undef, 2 => { port => 6432 });
$bad->write_config;
isnt(system($bad->binary . ' ' . $bad->ini_path . ' >' . $bad->outfile . ' 2>&1'), 0,
	'a peer without host refuses the file');

is($px{$_}->stop, 0, "peer $_ exits cleanly") for 1 .. 3;
done_testing();
