# 083_abuse.pl -- what a stranger can cost: the open-file limit, the cap on
# unauthenticated connections (max_login_clients), client_login_timeout from
# accept for every pre-login state (slowloris), the memory one unauthenticated
# connection can hold, and cancel-request floods.  (EMFILE back-off: 062 #12.)

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use POSIX ();
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $T0 = time;
my $node = PgSlab::Test::Cluster->new(name => 'c083');
$node->start;
$node->create_user('app', 'app_pw');
my $cport = $node->port;

sub rss_kb
{
	my ($pid) = @_;
	my $st = PgSlab::Test::Cluster::_slurp("/proc/$pid/status") // '';
	return $st =~ /^VmRSS:\s+(\d+)/m ? $1 : undef;
}

# Bytes in use in pgslab's slab caches (SHOW MEM: size x used).
sub slab_bytes
{
	my ($proxy) = @_;
	my $n = 0;
	$n += $_->{size} * $_->{used} for grep { $_->{name} !~ /^(openssl_buffers|sysalloc_calls|arena)$/ } $proxy->admin_hash('SHOW MEM');
	return $n;
}

sub list_item
{
	my ($proxy, $name) = @_;
	# over the Unix socket: not counted against max_login_clients
	my ($row) = grep { $_->[0] eq $name } $proxy->admin('SHOW LISTS', host => $proxy->socket_dir);
	return $row ? $row->[1] : undef;
}

sub poll
{
	my ($cb, $secs) = @_;
	my $end = time + $secs;
	while (time < $end) {
		return 1 if $cb->();
		sleep(0.1);
	}
	return $cb->();
}

# --- RLIMIT_NOFILE: raised to what max_client_conn needs, or said ---------------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p083_nofile',
		wrapper  => [ 'prlimit', '--nofile=256:20000' ],
		settings => { max_client_conn => 6000, auth_type => 'plain' },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$proxy->start;
	my $lim = PgSlab::Test::Cluster::_slurp('/proc/' . $proxy->pid . '/limits');
	my ($soft) = $lim =~ /Max open files\s+(\d+)/;
	cmp_ok($soft, '>=', 6000 * 2 + 64, "soft open-file limit 256 raised to $soft for max_client_conn = 6000");
	$proxy->stop;

	$proxy = PgSlab::Test::Proxy->new(cluster => $node, name => 'p083_nofile2',
		wrapper  => [ 'prlimit', '--nofile=40:40' ],
		settings => { max_client_conn => 1000, auth_type => 'plain' },
		userlist => [ [ 'app', 'app_pw' ] ]);
	$proxy->start;
	ok($proxy->wait_for_log(qr/open file limit 40 is below what max_client_conn = 1000 needs/, timeout => 5),
		'hard limit 40 < what max_client_conn = 1000 needs: logged');
	$proxy->stop;
}

# --- slowloris and the pre-login cap -------------------------------------------------------------
my $LOGIN_TO = 12;
my $CAP = 3000;
my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p083',
	databases => { postgres => "host=127.0.0.1 port=$cport dbname=postgres" },
	settings  => { auth_type => 'scram-sha-256', max_client_conn => 8000,
		max_login_clients => $CAP, client_login_timeout => $LOGIN_TO,
		default_pool_size => 4 },
	userlist => [ [ 'app', 'app_pw' ] ]);
$proxy->start;
my ($host, $port, $pid) = ($proxy->host, $proxy->port, $proxy->pid);
my %app = (user => 'app', password => 'app_pw');

# A logged-in client before the flood: it must never notice it.
my $old = $proxy->connect_dbi('postgres', %app);
is($old->selectrow_array('SELECT 1'), 1, 'a client logged in before the flood');
$old->selectrow_array('SELECT 1') for 1 .. 3;
my $rss0 = rss_kb($pid);
my $slab0 = slab_bytes($proxy);

# Heavy: the worst plain state -- a startup packet announcing the 10,000
# bytes PostgreSQL allows, 9,999 of them sent.  Light: one byte.  SCRAM: an
# exchange stopped after the server-first message (pgslab holds its state).
my $N_HEAVY = 1000;
my $N_SCRAM = 50;
my $N_LIGHT = 1500;
my (@conn, %opened);
my $body = pack('N', 196608) . 'user' . "\0" . ('x' x (10000 - 13));
my $big = pack('N', 10000) . $body;   # 10,000 bytes, the last one never sent
my $t_open = time;
for (1 .. $N_HEAVY) {
	my $s = raw_connect($host, $port);
	raw_send($s, substr($big, 0, 9999));
	push @conn, $s;
	$opened{"$s"} = time;
}
ok(poll(sub { (list_item($proxy, 'login_clients') // -1) == $N_HEAVY }, 10),
	"$N_HEAVY half-sent 10,000-byte startup packets: all held as logins");
sleep(0.3);
my $rss1 = rss_kb($pid);
my $per_heavy = ($rss1 - $rss0) * 1024 / $N_HEAVY;
my $slab1 = slab_bytes($proxy);
my $slab_heavy = ($slab1 - $slab0) / $N_HEAVY;
diag(join(', ', map { "$_->{name} $_->{size} B x $_->{used}" }
	grep { $_->{name} =~ /^(client|client_login|buf-\d+)$/ && $_->{used} } $proxy->admin_hash('SHOW MEM')));

my @scram;
for (1 .. $N_SCRAM) {
	my $s = raw_connect($host, $port);
	scram_abandon($s, 'app', 'app_pw', 'cont_read') or last;
	push @scram, $s;
	$opened{"$s"} = time;
}
is(scalar @scram, $N_SCRAM, "$N_SCRAM SCRAM exchanges stopped after server-first");
sleep(0.3);
my $rss2 = rss_kb($pid);
my $per_scram = ($rss2 - $rss1) * 1024 / $N_SCRAM;
my $slab2 = slab_bytes($proxy);
my $slab_scram = ($slab2 - $slab1) / $N_SCRAM;

my $startup = startup_packet(user => 'app', database => 'postgres');
my @light;
for (1 .. $N_LIGHT) {
	my $s = raw_connect($host, $port);
	raw_send($s, substr($startup, 0, 1));
	push @light, [ $s, 1 ];
	$opened{"$s"} = time;
}
ok(poll(sub { (list_item($proxy, 'login_clients') // -1) == $N_HEAVY + $N_SCRAM + $N_LIGHT }, 10),
	($N_HEAVY + $N_SCRAM + $N_LIGHT) . ' pre-login connections held');
my $rss3 = rss_kb($pid);
my $per_light = ($rss3 - $rss2) * 1024 / $N_LIGHT;
my $slab_light = (slab_bytes($proxy) - $slab2) / $N_LIGHT;
my $opened_in = time - $t_open;
diag(sprintf('RSS %d -> %d -> %d -> %d KiB; per connection: half startup %.0f B, mid-SCRAM %.0f B, one byte %.0f B; opened in %.1f s',
	$rss0, $rss1, $rss2, $rss3, $per_heavy, $per_scram, $per_light, $opened_in));
diag(sprintf('slab bytes per connection: half startup %.0f, mid-SCRAM %.0f, one byte %.0f',
	$slab_heavy, $slab_scram, $slab_light));
# The documented bound (README): 17,408 bytes per unauthenticated plain
# connection, in pgslab's own accounting (slab caches) and as RSS growth;
# under a sanitizer RSS also holds shadow memory (1/8) and redzones: 1.25x.
my $BOUND = 17408;
my $rss_bound = ($ENV{PGSLAB} // '') =~ /asan|ubsan|san$/ ? $BOUND * 1.25 : $BOUND;
cmp_ok($slab_heavy, '<=', $BOUND, 'worst plain pre-login state (half startup): slab bytes within 17,408 each');
cmp_ok($slab_heavy, '>=', 10000, '... (and it does hold the 10,000-byte packet: the measure measures)');
cmp_ok($slab_scram, '<=', $BOUND, 'mid-SCRAM state: slab bytes within the bound');
cmp_ok($slab_light, '<=', $BOUND, 'one-byte state: slab bytes within the bound');
cmp_ok($per_heavy, '<=', $rss_bound, "half startup: RSS growth within $rss_bound bytes each");
cmp_ok($per_scram, '<=', $rss_bound, 'mid-SCRAM: RSS growth within it');
cmp_ok($per_light, '<=', $rss_bound, 'one byte: RSS growth within it');

# Past the cap: refused with a clear error, at once.
my $held = $N_HEAVY + $N_SCRAM + $N_LIGHT;
my $extra = $CAP - $held + 100;
my (@more, $refused, $accepted);
for (1 .. $extra) {
	my $s = eval { raw_connect($host, $port) } or last;
	push @more, $s;
	$opened{"$s"} = time;
}
($refused, $accepted) = (0, 0);
my $refusal_msg = '';
my (@kept, %other);
sleep(0.5);   # refusals are written at accept: by now they are there
my %ready = map { ("$_" => 1) } IO::Select->new(@more)->can_read(0);
for my $s (@more) {
	if (!$ready{"$s"}) {
		$accepted++;
		push @kept, $s;
		next;
	}
	my $o = read_outcome($s, 1);
	if ($o->{error} && ($o->{error}{C} // '') eq '53300') {
		$refused++;
		$refusal_msg = $o->{error}{M};
		close $s;
	} else {
		$other{ describe_outcome($o) }++;
	}
}
diag("other outcomes: $_ x $other{$_}") for sort keys %other;
is($accepted, $CAP - $held, "up to max_login_clients = $CAP: " . ($CAP - $held) . ' more accepted');
is($refused, 100, 'the 100 beyond the cap refused');
like($refusal_msg, qr/too many clients still logging in \(max_login_clients\)/, "... with \"$refusal_msg\"");
is($old->selectrow_array('SELECT 7'), 7, 'the client logged in before the flood still works at the cap');
# Give the accepted extras' slots back, so real clients can log in below.
close $_ for @kept;
@kept = ();
ok(poll(sub { (eval { list_item($proxy, 'login_clients') } // -1) == $held }, 5),
	"back to $held pre-login connections");
# Trickle one byte a second on the light ones while real clients log in.
my $trickle = sub {
	for my $l (@light) {
		next if !$l->[0] || $l->[1] >= length($startup) - 1;
		raw_send($l->[0], substr($startup, $l->[1], 1));
		$l->[1]++;
	}
};
my ($logins, $login_ok, $slowest) = (0, 0, 0);
my $last_trickle = 0;
my $real_end = time + 2;
while (time < $real_end) {
	if (time - $last_trickle >= 1) {
		$trickle->();
		$last_trickle = time;
	}
	my $t = time;
	my $dbh = eval { $proxy->connect_dbi('postgres', %app) };
	my $v = $dbh ? $dbh->selectrow_array('SELECT 42') : undef;
	$dbh->disconnect if $dbh;
	my $dt = time - $t;
	$logins++;
	$login_ok++ if defined $v && $v == 42;
	$slowest = $dt if $dt > $slowest;
	sleep(0.05);
}
cmp_ok($logins, '>=', 5, "$logins real logins during the trickle");
is($login_ok, $logins, 'every real login succeeded and ran its query');
cmp_ok($slowest, '<', 2, sprintf('slowest real login + query %.3f s (liveness bound 2 s)', $slowest));

# Every pre-login connection is closed at client_login_timeout counted from
# accept, whatever it keeps sending.
my $sel = IO::Select->new(@conn, @scram, (map { $_->[0] } @light), @kept);
my %group = ((map { ("$_" => 'heavy') } @conn), (map { ("$_" => 'scram') } @scram),
	(map { ("$_->[0]" => 'light') } @light), );
my (%closed_after, %gmin, %gmax);
my $wait_end = time + $LOGIN_TO + 6;
while ($sel->count && time < $wait_end) {
	if (time - $last_trickle >= 1) {
		$trickle->();
		$last_trickle = time;
	}
	for my $s ($sel->can_read(0.2)) {
		my $buf;
		my $n = sysread($s, $buf, 65536);
		next if defined $n && $n > 0;
		$closed_after{"$s"} = time - $opened{"$s"};
		my $g = $group{"$s"};
		$gmin{$g} = $closed_after{"$s"} if !defined $gmin{$g} || $closed_after{"$s"} < $gmin{$g};
		$gmax{$g} = $closed_after{"$s"} if !defined $gmax{$g} || $closed_after{"$s"} > $gmax{$g};
		$sel->remove($s);
		close $s;
	}
}
$_->[0] = undef for @light;
diag(sprintf('%s: closed %.1f .. %.1f s after connect', $_, $gmin{$_}, $gmax{$_})) for sort keys %gmin;
is($sel->count, 0, 'every pre-login connection was closed') or diag($sel->count . ' still open');
my @ages = sort { $a <=> $b } values %closed_after;
cmp_ok($ages[0], '>=', $LOGIN_TO - 0.5, sprintf('none closed before client_login_timeout (earliest %.1f s)', $ages[0]));
cmp_ok($ages[-1], '<=', $LOGIN_TO + 4, sprintf('all closed soon after it (latest %.1f s after its connect)', $ages[-1]));
is(list_item($proxy, 'login_clients'), 0, 'no login left');
is($old->selectrow_array('SELECT 8'), 8, 'the old client still works');
my $dbh = $proxy->connect_dbi('postgres', %app);
ok($dbh && $dbh->selectrow_array('SELECT 1'), 'a new client logs in after the flood');
$dbh->disconnect if $dbh;

# --- the pre-login count stays exact: logins abandoned at random steps, then a RELOAD -------------
# A count that leaked upward would refuse real logins below the cap; one that
# went negative would let more than the cap in.  Seed printed; SEED=n replays.
{
	my $seed = $ENV{SEED} // int(rand(2**31));
	diag("abandoned-login churn: seed $seed");
	srand($seed);
	my $cap = 8;
	$proxy->set(max_login_clients => $cap);
	$proxy->reload;
	ok(poll(sub { grep { $_->{key} eq 'max_login_clients' && $_->{value} eq $cap }
		$proxy->admin_hash('SHOW CONFIG') }, 10),
		"RELOAD: max_login_clients = $cap");
	my @steps = qw(bytes startup first_read init_sent cont_read final_sent);
	my %done;
	for (1 .. 300) {
		my $s = raw_connect($host, $port) or next;
		my $step = $steps[int rand @steps];
		if ($step eq 'bytes') {
			my $sp = startup_packet(user => 'app', database => 'postgres');
			raw_send($s, substr($sp, 0, 1 + int rand(length($sp) - 1)));
		} else {
			scram_abandon($s, 'app', rand() < 0.5 ? 'app_pw' : 'wrong', $step);
		}
		$done{$step}++;
		if (rand() < 0.5) { raw_reset($s) } else { close $s }
		# never more than a few open at once: the cap is not what is tested here
		poll(sub { (list_item($proxy, 'login_clients') // 99) < $cap / 2 }, 5);
	}
	diag(join(' ', map { "$_=$done{$_}" } sort keys %done));
	ok(poll(sub { (list_item($proxy, 'login_clients') // -1) == 0 }, 10),
		'300 logins abandoned at random steps (FIN or RST): none left');
	my @held = map { my $s = raw_connect($host, $port); raw_send($s, "\0"); $s } 1 .. $cap;
	ok(poll(sub { (list_item($proxy, 'login_clients') // -1) == $cap }, 5),
		"$cap half-open logins held; the console over the Unix socket still answers");
	my $s = raw_connect($host, $port);
	raw_send($s, startup_packet(user => 'app', database => 'postgres'));
	my $o = read_outcome($s, 5);
	is($o->{error} && $o->{error}{C}, '53300', 'the next one is refused at exactly the cap')
	    or diag(describe_outcome($o));
	close $_ for @held, $s;
	ok(poll(sub { (list_item($proxy, 'login_clients') // -1) == 0 }, 5), 'the held ones are gone');
	for my $pw ('', 'wrong', 'APP_PW') {
		my $d = eval { $proxy->connect_dbi('postgres', user => 'app', password => $pw) };
		ok(!($d && $d->selectrow_array('SELECT 1')), "after the RELOAD: password '$pw' refused");
	}
	my $d = $proxy->connect_dbi('postgres', %app);
	ok($d && $d->selectrow_array('SELECT 1'), 'the right password still logs in');
	$d->disconnect if $d;
	$proxy->set(max_login_clients => $CAP);
	$proxy->reload;
}

# --- cancel floods ----------------------------------------------------------------------------------
sub pg_conn_count
{
	my $log = PgSlab::Test::Cluster::_slurp($node->logfile) // '';
	my @n = $log =~ /connection received:/g;
	return scalar @n;
}

sub flood_cancel
{
	my ($n, $keyfn) = @_;
	my @s;
	for my $i (1 .. $n) {
		my $c = eval { raw_connect($host, $port) } or last;
		my ($cpid, $ckey) = $keyfn->($i);
		raw_send($c, pack('N N N N', 16, 80877102, $cpid, $ckey));
		push @s, $c;
	}
	my $eof = 0;
	for my $c (@s) {
		my ($t) = read_msg($c, 3);
		$eof++ if $t eq 'EOF';
		close $c;
	}
	return ($eof, scalar @s);
}

{
	my $s = raw_connect($host, $port);
	my $o = password_login($s, 'app', 'app_pw');
	ok($o->{ready} && $o->{pid}, 'a raw session with its cancel key');
	raw_query($s, 'SELECT 1');
	read_until_ready($s, 5);

	# Invalid keys: no connection to PostgreSQL at all.
	raw_query($s, 'SELECT pg_sleep(1.5)');
	sleep(0.2);
	my $before = pg_conn_count();
	my ($eof, $sent) = flood_cancel(500, sub {
		$_[0] % 2 ? ($o->{pid}, ($o->{key} + $_[0]) & 0xffffffff) : (int(rand(2**31)), int(rand(2**32)))
	});
	is($sent, 500, '500 cancel requests with wrong keys sent');
	is($eof, 500, '... each connection closed by pgslab');
	my $r = read_until_ready($s, 5);
	ok(!$r->{error}, 'the query was not cancelled');
	sleep(0.5);
	is(pg_conn_count() - $before, 0, '... and PostgreSQL saw no connection for them');

	# A valid key, 500 times, while pg_sleep runs: cancelled, few connections.
	raw_query($s, 'SELECT pg_sleep(20)');
	sleep(0.3);
	$before = pg_conn_count();
	my $t = time;
	($eof, $sent) = flood_cancel(500, sub { ($o->{pid}, $o->{key}) });
	is($sent, 500, '500 cancel requests with the right key sent');
	$r = read_until_ready($s, 10);
	is($r->{error}{C}, '57014', sprintf('the query was cancelled (%.1f s)', time - $t));
	sleep(0.5);
	my $opened_pg = pg_conn_count() - $before;
	cmp_ok($opened_pg, '>=', 1, "PostgreSQL received $opened_pg cancel connection(s)");
	cmp_ok($opened_pg, '<=', 16, '... at most CANCEL_MAX_INFLIGHT (16), not one per request');
	raw_query($s, 'SELECT 1');
	$r = read_until_ready($s, 5);
	ok(!$r->{error} && $r->{types} =~ /Z/, 'the session is usable after the flood');
	close $s;
}

ok($proxy->is_running, 'pgslab still running');
$proxy->stop;
diag(sprintf('083 ran %.1f s', time - $T0));
done_testing();
