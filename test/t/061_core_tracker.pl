# 061_core_tracker.pl -- issue 10: the protocol tracker must never hand over a dirty backend
# (#3 Flush without Sync, #4 pipelining across ReadyForQuery (#5, the release race, is in
# 066_core_release_race.pl), #8 extended-protocol COPY FROM STDIN, #18 partial message / errored pipeline, then
# the client leaves).  Transaction mode, one server.

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use IO::Select;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c061');
$node->start;
$node->safe_psql('postgres', 'CREATE TABLE t (i int)');
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p061',
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

# --- #3: Parse/Bind/Execute(INSERT) + Flush, then disconnect ------------------------------
{
	my $a = login();
	raw_send($a, ext_query('INSERT INTO t VALUES (1)') . msg_flush());
	my @t;
	for (1 .. 3) {
		my ($t) = read_msg($a, 5);
		push @t, $t;
	}
	is("@t", '1 2 C', '#3: client A got ParseComplete, BindComplete, CommandComplete after Flush');
	close $a;
	sleep(0.3);
	my $r = select_via_proxy(1, 5);
	is($r->{types}, 'T D C Z', '#3: client B runs SELECT 1 afterwards');
	sleep(0.2);
	is(count_rows(1), '0', '#3: the row of the client that left inside the implicit transaction is not committed');
}

# --- #4: Q then P/B/E/S in one write ------------------------------------------------------------
{
	my $b = login();
	my $a = login();
	raw_send($a, frontend_message('Q', "SELECT 1\0") . ext_query('INSERT INTO t VALUES (2)') . msg_sync());
	raw_query($b, 'SELECT 42');
	my $ra = read_until_n_ready($a, 2, 5);
	my $rb = read_until_ready($b, 8);
	is("@{ $ra->{types} }", 'T D C Z 1 2 C Z',
		'#4: pipelined Q + P/B/E/S: all responses arrive, in order');
	is($rb->{types}, 'T D C Z', '#4: the other client gets exactly its own result');
	is_deeply($rb->{rows}, [ [ '42' ] ], '#4: ... with its own row');
	close $a;
	close $b;
	sleep(0.3);
	is(count_rows(2), '1', '#4: the INSERT is committed exactly once');

	# The same, with the Sync of the extended batch sent a moment later: the
	# ReadyForQuery of Q arrives while P/B/E are on the server.
	$b = login();
	$a = login();
	raw_send($a, frontend_message('Q', "SELECT 1\0") . ext_query('INSERT INTO t VALUES (3)'));
	sleep(0.5);
	raw_query($b, 'SELECT 43');
	sleep(0.2);
	raw_send($a, msg_sync());
	$ra = read_until_n_ready($a, 2, 5);
	$rb = read_until_ready($b, 8);
	is("@{ $ra->{types} }", 'T D C Z 1 2 C Z',
		'#4: Q + P/B/E, Sync later: all responses arrive, in order');
	is($rb->{types}, 'T D C Z', '#4: (Sync later) the other client gets exactly its own result');
	is_deeply($rb->{rows}, [ [ '43' ] ], '#4: (Sync later) ... with its own row');
	close $a;
	close $b;
	sleep(0.3);
	is(count_rows(3), '1', '#4: (Sync later) the INSERT is committed exactly once');
}

# --- #8: extended-protocol COPY FROM STDIN, as libpq sends it ---------------------------------
{
	my $a = login();
	raw_send($a, frontend_message('P', "\0COPY t FROM STDIN\0" . pack('n', 0))
		. frontend_message('B', "\0\0" . pack('n n n', 0, 0, 0))
		. frontend_message('D', "P\0")
		. frontend_message('E', "\0" . pack('N', 0))
		. msg_sync());
	my @t;
	while (1) {
		my ($t) = read_msg($a, 5);
		push @t, $t;
		last if $t eq 'G' || $t eq 'E' || $t eq 'EOF' || $t eq 'TIMEOUT' || @t > 10;
	}
	is($t[-1], 'G', '#8: CopyInResponse after P/B/D/E/S');
	raw_send($a, frontend_message('d', "8\n") . frontend_message('d', "8\n")
		. frontend_message('c', '') . msg_sync());
	my $r = read_until_n_ready($a, 1, 5);
	is("@{ $r->{types} }", 'C Z', '#8: CommandComplete and ReadyForQuery after CopyDone + Sync');
	# Client A stays connected and idle.
	my $p = wait_pool(sub { ($_[0]{sv_active} // 1) == 0 }, 5);
	is($p->{sv_active}, 0, '#8: SHOW POOLS: no active server while the COPY client is idle');
	my $rb = select_via_proxy(8, 5);
	is($rb->{types}, 'T D C Z', '#8: a second client gets the only server');
	close $a;
	is(count_rows(8), '2', '#8: the COPY rows are committed');
}

# --- #18: partial message then disconnect; errored pipeline without Sync ------------------------
{
	my $a = login();
	my $sql = 'SELECT ' . ("'x' || " x 280) . "'y'";
	$sql = substr($sql . (' ' x 2000), 0, 2000 - 5);
	my $msg = frontend_message('Q', "$sql\0");
	is(length $msg, 2001, '#18: a 2,000-byte Query message');	# type + 2,000 length-counted bytes
	raw_send($a, substr($msg, 0, 600));
	sleep(0.3);
	close $a;
	sleep(0.3);
	my $r = select_via_proxy(18, 5);
	is($r->{types}, 'T D C Z', '#18: after a client left in the middle of a Query message, the next client gets its result');
	is_deeply($r->{rows}, [ [ '18' ] ], '#18: ... its own row');

	$a = login();
	my $psql = substr('SELECT 1 AS ' . ('x' x 2000), 0, 2000 - 4 - 1 - 1 - 2);
	my $pmsg = frontend_message('P', "\0$psql\0" . pack('n', 0));
	is(length $pmsg, 2001, '#18: a 2,000-byte Parse message');
	raw_send($a, substr($pmsg, 0, 600));
	sleep(0.3);
	close $a;
	sleep(0.3);
	$r = select_via_proxy(21, 5);
	is($r->{types}, 'T D C Z', '#18: after a client left in the middle of a Parse message, the next client gets its result');

	$a = login();
	raw_send($a, ext_query('SELECT 1/0'));
	sleep(0.3);
	close $a;
	sleep(0.3);
	$r = select_via_proxy(19, 5);
	is($r->{types}, 'T D C Z', '#18: after a client left with an errored pipeline and no Sync, the next client gets its result');

	$a = login();
	raw_send($a, frontend_message('P', "\0SELECT 1\0" . pack('n', 0)) . substr(ext_query('SELECT 2'), 0, 7));
	sleep(0.3);
	close $a;
	sleep(0.3);
	$r = select_via_proxy(20, 5);
	is($r->{types}, 'T D C Z', '#18: after a client left in the middle of a Bind message, the next client gets its result');
}

# --- TRACK_MAX: 65,536 requests in flight (found by fuzz_track: a request refused at
# TRACK_MAX changed the tracker's flags; a refused Sync cleared UNSYNCED) ----------------
# A direct connection holds a lock on t, so the backend stops at the INSERT and the whole
# pipeline is queued in pgslab's tracker when the last message arrives.
{
	my $lock = raw_connect($node->host, $node->port);
	my $o = scram_login($lock, $su, $supw);
	die 'direct login failed: ' . describe_outcome($o) unless $o->{ready};
	# the INSERT, then 65,533 Describes of the unnamed statement (7 bytes each): 65,536 requests
	my $pipeline = sub { ext_query("INSERT INTO t VALUES ($_[0])") . (frontend_message('D', "S\0") x 65533) };
	my $send = sub {
		my ($s, $data) = @_;
		my ($off, $t0) = (0, time);
		local $SIG{PIPE} = 'IGNORE';
		$s->blocking(0);
		my $sel = IO::Select->new($s);
		while ($off < length $data && time - $t0 < 10) {
			next unless $sel->can_write(0.5);
			my $n = syswrite($s, $data, length($data) - $off, $off);
			last if !defined $n && !$!{EAGAIN};
			$off += $n // 0;
		}
		$s->blocking(1);
		return $off;
	};

	raw_query($lock, 'BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
	is(read_until_ready($lock, 5)->{types}, 'C C Z', 'TRACK_MAX: t locked by a direct connection');
	my $a = login();
	my $data = $pipeline->(30) . msg_flush() . msg_sync();
	is($send->($a, $data), length $data, 'TRACK_MAX: 65,536 requests, a Flush and a Sync sent');
	my ($t, $b) = read_msg($a, 10);
	my $err = $t eq 'E' ? parse_fields($b) : {};
	raw_query($lock, 'COMMIT');
	read_until_ready($lock, 5);
	my $full = ($err->{C} // '') eq '54000';
	if ($full) {
		like($err->{M}, qr/too many pipelined requests/, 'TRACK_MAX: the Sync past it is refused (54000)');
		close $a;
		my $r = select_via_proxy(22, 10);
		is($r->{types}, 'T D C Z', 'TRACK_MAX: after the refused Sync the next client gets its result');
		is(count_rows(30), '0', 'TRACK_MAX: the INSERT of the client whose Sync was refused is not committed');
	} else {
		# the backend took part of the pipeline before the Sync arrived: it is not refused
		my $r = read_until_ready($a, 20);
		note("TRACK_MAX: the Sync was not refused (first reply $t); the refusal was not exercised");
		is(count_rows(30), '1', 'TRACK_MAX: (Sync accepted) the INSERT is committed');
		close $a;
	}

	# the client leaves with a full pipeline and no Sync: the ROLLBACK and Sync a drain
	# would send cannot be tracked, so the server is closed at once
	raw_query($lock, 'BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
	read_until_ready($lock, 5);
	$a = login();
	$data = $pipeline->(31) . msg_flush();
	is($send->($a, $data), length $data, 'TRACK_MAX: 65,536 requests and a Flush sent');
	sleep(0.3);
	close $a;
	SKIP: {
		skip 'the pipeline did not fill the tracker here (see above)', 1 unless $full;
		ok($proxy->wait_for_log(qr/too many requests in flight to drain/, timeout => 10),
			'TRACK_MAX: the client left with a full pipeline: its server is closed at once, not drained');
	}
	raw_query($lock, 'COMMIT');
	read_until_ready($lock, 5);
	close $lock;
	my $r = select_via_proxy(23, 10);
	is($r->{types}, 'T D C Z', 'TRACK_MAX: then the next client gets its result');
	is(count_rows(31), '0', 'TRACK_MAX: the INSERT of the client that left is not committed');
}

ok($proxy->is_running, 'pgslab still running');
my $p = wait_pool(sub { ($_[0]{cl_active} // 1) == 0 && ($_[0]{cl_waiting} // 1) == 0 }, 5);
is(($p->{cl_active} // -1) + ($p->{cl_waiting} // -1), 0, 'no client left in the pool');
done_testing();
