# 084_dns.pl -- issue 15: server host names resolved without blocking the loop, cached for
# dns_max_ttl / dns_nxdomain_ttl, and host lists with load_balance_hosts (PgBouncer's rules).
#
# A small DNS server of the test's own (UDP on 127.0.0.1, named in a resolv_conf file) answers
# "db.test" with 127.0.0.1, "nx.test" with NXDOMAIN, and never answers "mute.test"; it counts
# the questions it gets, so the tests can see what the cache saved.

use strict;
use warnings;

use IO::Socket::INET;
use POSIX qw(_exit);
use Test::More;
use Time::HiRes qw(sleep time);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $node = PgSlab::Test::Cluster->new(name => 'c084');
$node->start;
my ($h, $port) = ($node->host, $node->port);

# ---- the DNS server -------------------------------------------------------------------------
my $tmp = PgSlab::Test::Cluster::make_temp_dir('pgslab_dns');
my $udp = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'udp')
    or die "udp: $!";
my $dns_port = $udp->sockport;
my $counts = "$tmp/queries";

sub qname
{
	my ($pkt, $off) = @_;
	my @l;
	while (1) {
		my $n = ord(substr($pkt, $off, 1));
		$off++;
		last if $n == 0;
		push @l, substr($pkt, $off, $n);
		$off += $n;
	}
	return (lc join('.', @l), $off);
}

my $dns_pid = fork() // die "fork: $!";
if ($dns_pid == 0) {
	my $deadline = time() + 300; # bounded: the server stops by itself
	while (time() < $deadline) {
		my $rin = '';
		vec($rin, fileno($udp), 1) = 1;
		next unless select(my $rout = $rin, undef, undef, 1);
		my $peer = $udp->recv(my $q, 512) // next;
		next if length($q) < 17;
		my ($id) = unpack('n', $q);
		my ($name, $end) = qname($q, 12);
		my ($qtype) = unpack('n', substr($q, $end, 2));
		open(my $fh, '>>', $counts) or next;
		print $fh "$name $qtype\n";
		close($fh);
		next if $name eq 'mute.test';
		my $question = substr($q, 12, $end + 4 - 12);
		my ($rcode, $answer) = (3, '');    # NXDOMAIN
		if ($name eq 'db.test') {
			$rcode = 0;
			# an A record for 127.0.0.1 (none for AAAA: NOERROR, no data)
			$answer = pack('n n n N n C4', 0xc00c, 1, 1, 60, 4, 127, 0, 0, 1) if $qtype == 1;
		}
		my $flags = 0x8180 | $rcode;
		my $resp = pack('n n n n n n', $id, $flags, 1, $answer eq '' ? 0 : 1, 0, 0)
		    . $question . $answer;
		$udp->send($resp, 0, $peer);
	}
	_exit(0);
}
END { kill 'TERM', $dns_pid if $dns_pid; }

sub queries
{
	my ($name) = @_;
	open(my $fh, '<', $counts) or return 0;
	my $n = grep { /^\Q$name\E 1$/ } <$fh>;
	return $n;
}

my $resolv = "$tmp/resolv.conf";
open(my $rf, '>', $resolv) or die;
print $rf "nameserver 127.0.0.1:$dns_port\noptions timeout:1 attempts:1 ndots:1\n";
close($rf);

# ---- pgslab ---------------------------------------------------------------------------------
my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p084',
	databases => {
		byname     => "host=db.test port=$port dbname=postgres",
		nx         => "host=nx.test port=$port dbname=postgres",
		mute       => "host=mute.test port=$port dbname=postgres",
		bad_first  => "host=nx2.test,$h port=$port dbname=postgres load_balance_hosts=disable",
		good_first => "host=$h,127.0.0.3 port=$port dbname=postgres load_balance_hosts=disable",
		rr         => "host=$h,db.test port=$port dbname=postgres load_balance_hosts=round-robin",
		plain      => "host=$h port=$port dbname=postgres",
	},
	settings => { resolv_conf => $resolv, dns_max_ttl => 60, dns_nxdomain_ttl => 60,
		server_login_retry => 1, pool_mode => 'transaction', query_wait_timeout => 20,
		server_idle_timeout => 0 });
$proxy->start;

sub count_log
{
	my ($re) = @_;
	open(my $fh, '<', $proxy->logfile) or return 0;
	return scalar grep { /$re/ } <$fh>;
}

# A name resolves through the resolver, and its answer is kept for dns_max_ttl.
is($proxy->safe_psql('byname', 'SELECT 41 + 1'), '42', 'a host name is resolved and served');
is(queries('db.test'), 1, 'one question to the DNS server');
$proxy->admin('RECONNECT byname');
$proxy->admin('SET server_idle_timeout = 0');
is($proxy->safe_psql('byname', 'SELECT 2'), '2', 'a new server of the same host');
is(queries('db.test'), 1, '... from the cached answer (dns_max_ttl)');

# A name that does not resolve fails the login with PgBouncer's words; the failure is cached.
my ($rc, $out, $err) = $proxy->psql('nx', 'SELECT 1', params => { connect_timeout => 15 });
isnt($rc, 0, 'an unresolvable host fails the client');
ok($proxy->wait_for_log(qr/closing because: server DNS lookup failed/),
	'... and the server closes "because: server DNS lookup failed"');
my $nxq = queries('nx.test');
ok($nxq >= 1, 'the DNS server was asked');
sleep 1.2; # past server_login_retry
($rc, $out, $err) = $proxy->psql('nx', 'SELECT 1', params => { connect_timeout => 15 });
isnt($rc, 0, 'the second try fails too');
is(queries('nx.test'), $nxq, '... from the cached failure (dns_nxdomain_ttl), no new question');

# A resolver that never answers does not stall other pools: while a client waits for mute.test,
# another database answers.
my $waiter = fork() // die;
if ($waiter == 0) {
	my ($r) = $proxy->psql('mute', 'SELECT 1', params => { connect_timeout => 15 });
	_exit($r ? 1 : 0);
}
my $t = time();
sleep 0.1 while queries('mute.test') == 0 && time() - $t < 10;
ok(queries('mute.test') >= 1, 'the lookup of mute.test is under way');
is($proxy->safe_psql('plain', 'SELECT 7'), '7', 'meanwhile another database answers');
my ($mute) = grep { $_->{database} eq 'mute' } $proxy->admin_hash('SHOW POOLS');
ok($mute && $mute->{cl_waiting} >= 1, '... while the mute.test client still waits');
waitpid($waiter, 0);
isnt($? >> 8, 0, 'the mute.test client fails once the resolver times out');

# Host lists, load_balance_hosts = disable: a bad first host is left after its failure, once.
my @kids;
for (1 .. 2) {
	my $pid = fork() // die;
	if ($pid == 0) {
		my ($r) = $proxy->psql('bad_first', 'SELECT pg_sleep(0.5)', params => { connect_timeout => 15 });
		_exit($r ? 1 : 0);
	}
	push @kids, $pid;
}
my $fails = 0;
for (@kids) { waitpid($_, 0); $fails++ if $? }
is($fails, 0, 'disable, bad host first: both clients are served');
is(count_log(qr/bad_first\/\S+ closing because: server DNS lookup failed/), 1,
	'... after one server DNS lookup failure (the pool moved on to the next host)');
is(count_log(qr/S-\d+: bad_first\/\S+\@\Q$h\E:\d+ new connection to server/), 2,
	'... both servers on the second host');

# disable, good host first: both servers on the first host.
@kids = ();
for (1 .. 2) {
	my $pid = fork() // die;
	if ($pid == 0) {
		my ($r) = $proxy->psql('good_first', 'SELECT pg_sleep(0.5)');
		_exit($r ? 1 : 0);
	}
	push @kids, $pid;
}
$fails = 0;
for (@kids) { waitpid($_, 0); $fails++ if $? }
is($fails, 0, 'disable, good host first: both clients are served');
is(count_log(qr/S-\d+: good_first\/\S+\@\Q$h\E:\d+ new connection to server/), 2,
	'... both on the first host');
is(count_log(qr/S-\d+: good_first\/\S+\@127\.0\.0\.3:/), 0, '... none on the second');

# round-robin: each new server takes the next host.
for (1 .. 4) {
	$proxy->safe_psql('rr', 'SELECT 1');
	$proxy->admin('RECONNECT rr');
}
my $first = count_log(qr/S-\d+: rr\/\S+\@\Q$h\E:\d+ new connection to server/);
my $second = count_log(qr/S-\d+: rr\/\S+\@db\.test:\d+ new connection to server/);
is("$first/$second", '2/2', 'round-robin: four servers, two on each host');

# SHOW DATABASES shows load_balance_hosts, and RELOAD changes it.
my ($row) = grep { $_->{name} eq 'good_first' } $proxy->admin_hash('SHOW DATABASES');
is($row->{load_balance_hosts}, 'disable', 'SHOW DATABASES: load_balance_hosts');
$proxy->set_databases(good_first =>
	"host=$h,127.0.0.3 port=$port dbname=postgres load_balance_hosts=round-robin");
$proxy->reload;
ok($proxy->wait_for_log(qr/configuration reloaded/), 'reloaded');
($row) = grep { $_->{name} eq 'good_first' } $proxy->admin_hash('SHOW DATABASES');
is($row->{load_balance_hosts}, 'round-robin', '... and it follows RELOAD');

# Teardown with a forwarded cancel still waiting for its peer's name (mute.test): the
# request leaves the resolver's waiters before it is freed.
{
	my $pp = PgSlab::Test::Proxy->new(cluster => $node, name => 'p084p',
		settings => { resolv_conf => $resolv, peer_id => 1 });
	$pp->set_peers(2 => { host => 'mute.test', port => 1 });
	$pp->start;
	my $before = queries('mute.test');
	my $c = IO::Socket::INET->new(PeerAddr => $pp->host, PeerPort => $pp->port) or die;
	# a cancel key naming peer 2 (PgBouncer's layout: id in the pid's second byte)
	print $c pack('N N N N', 16, 80877102, 2 << 16, 3);
	close $c;
	my $t0 = time();
	sleep 0.1 while queries('mute.test') == $before && time() - $t0 < 10;
	ok(queries('mute.test') > $before, 'a cancel for peer 2 waits on the lookup of its host');
	$pp->stop;
	ok(!$pp->is_running, '... and pgslab shuts down meanwhile');
	# (a freed request stays slab memory, so ASan cannot see the use the fix removed;
	# this checks the path runs to a clean stop)
}

# A resolv_conf that cannot be read stops pgslab from starting, with the reason.
my $bad = PgSlab::Test::Proxy->new(cluster => $node, name => 'p084b',
	settings => { resolv_conf => "$tmp/missing.conf" });
$bad->write_config;
my $rcb = system($bad->binary . ' ' . $bad->ini_path . ' >' . $bad->outfile . ' 2>&1');
isnt($rcb, 0, 'a missing resolv_conf: pgslab refuses to start');
my $said = '';
for my $f ($bad->outfile, $bad->logfile) {
	open(my $fh, '<', $f) or next;
	local $/;
	$said .= <$fh>;
}
like($said, qr/resolv_conf .*missing\.conf.*cannot open it/, '... and says why');

is($proxy->stop, 0, 'pgslab exits cleanly');
done_testing();
