# PgSlab::Test::Ledger -- fault-injection ledger test: writers that record
# what they saw committed, a chaos driver, and the checks afterwards.

package PgSlab::Test::Ledger;

use strict;
use warnings;

use Carp qw(croak);
use File::Path ();
use IO::Select;
use POSIX ();
use Time::HiRes qw(time sleep);

use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

=pod

=head1 NAME

PgSlab::Test::Ledger - transactions through pgslab under faults, checked against a ledger

=head1 SYNOPSIS

  my $l = PgSlab::Test::Ledger->new(seed => 42, seconds => 40, diag => sub { diag $_[0] });
  $l->start_servers;
  $l->setup;
  $l->baseline;
  $l->run;
  for my $c ($l->checks) { ok($c->{ok}, $c->{name}) or diag($c->{detail}) }
  diag($_) for $l->report;

=head1 DESCRIPTION

One PostgreSQL 15 cluster and one pgslab (C<$PGSLAB>) in transaction mode
in front of it (database C<ledgerdb>, login role C<ledger>).

B<Writers> (forked processes, raw wire protocol through pgslab) run
transfers: C<BEGIN>, two C<UPDATE>s of the C<accounts> table (the sum of
the balances never changes), an C<INSERT> of the transaction's unique id
into C<ledger>, C<COMMIT>.  Each transaction goes through one of four
protocol shapes (a Query per statement, one multi-statement Query,
Parse/Bind/Execute/Sync per statement, one extended pipeline with a single
Sync), and some carry a deliberate fault: an error before C<COMMIT>, a
deferred unique violation that makes C<COMMIT> itself fail, or a
C<ROLLBACK>.  Before anything is sent, the writer appends C<B id> to its
own journal; C<S id> just before the message carrying C<COMMIT>; and after
the answer C<C id> (the client saw C<COMMIT> succeed), C<F id> (an ERROR
and the session went on: not committed) or C<A id> (the connection died or
a FATAL came before C<COMMIT> was sent: not committed) or C<U id> (it died
after C<COMMIT> was sent: unknown).  A journal that ends at C<B> (the
writer was killed) means aborted, at C<S> unknown.  B<Loaders> run pgbench
(simple and extended) on a separate table for load.

The B<chaos driver> runs a schedule drawn from the seed (printed, so a run
can be replayed with the same seed and duration): C<pg_terminate_backend>
of pgslab's backends, PostgreSQL restarts (C<stop -m fast>, start on the
same port), SIGKILL and SIGSTOP/SIGCONT of writers, PAUSE/RESUME, KILL (and
RESUME), RECONNECT and KILL_CLIENT on the console, RELOAD (also with a
changed C<default_pool_size>), and hostile raw clients that leave in the
middle of a message (half a startup packet, an abandoned SCRAM exchange, a
transaction with half a COMMIT, a half Parse, a large unread result).

B<Checks> (C<checks>): every C<C> id is in the table, no C<F>/C<A> id is,
no id is there that nobody wrote, the balances sum to their start and each
equals what the ledger rows say; pgslab still runs, serves psql and a
C<pgbench -t 50>; once quiet no client waits, the pools' counters match
SHOW SERVERS and PostgreSQL's C<pg_stat_activity>, SHOW LISTS matches SHOW
CLIENTS/SERVERS/POOLS; after closing the servers (RECONNECT) the slab
caches' active objects and pgslab's open file descriptors are back at the
baseline taken before the chaos; no sanitizer report in the log.

Every loop is bounded in time and count.

=cut

use constant {
	USER     => 'ledger',
	PASSWORD => 'ledger_pw',
	DB       => 'ledgerdb',
	ACCOUNTS => 50,
	START_BALANCE => 1000,
};

# Slab caches whose active objects must come back to the baseline exactly.
my @LEAK_CACHES = qw(client server client_login server_login cancel_req pool);

# Chaos event kinds and their weights (PostgreSQL restarts are placed apart).
my @KINDS = (
	[ terminate   => 20 ],
	[ writer_kill => 10 ],
	[ writer_stop => 10 ],
	[ pause       => 7 ],
	[ reconnect   => 6 ],
	[ kill_pool   => 4 ],
	[ kill_client => 5 ],
	[ reload      => 5 ],
	[ reload_size => 6 ],
	[ hostile     => 22 ],
);

=head1 METHODS

=over

=item new(%opts)

C<seed>, C<seconds> (chaos phase, default 40), C<writers> (default 6),
C<loaders> (pgbench processes, default 2; loader I<i> uses protocol simple,
extended or prepared by I<i> mod 3),
C<max_events> (default 400, or two a second for long runs), C<restarts> (PostgreSQL restarts, default
C<seconds/20> capped at 2 for short runs, one a minute for long ones), C<diag>
(code ref for a line of output), C<wrapper> (a command prefix pgslab runs
under, as PgSlab::Test::Proxy's; e.g. valgrind), C<timeout> (seconds a
writer waits for a reply, default 20).

=cut

sub new
{
	my ($class, %o) = @_;
	my $seconds = $o{seconds} // 40;
	my $self = bless {
		seed       => $o{seed} // (time() ^ ($$ << 8)) % 1000000000,
		seconds    => $seconds,
		writers    => $o{writers} // 6,
		loaders    => $o{loaders} // 2,
		max_events => $o{max_events} // ($seconds * 2 > 400 ? $seconds * 2 : 400),
		restarts   => $o{restarts} // ($seconds <= 120 ? ($seconds >= 30 ? 2 : 1) : int($seconds / 60)),
		diag       => $o{diag} // sub { print STDERR "# $_[0]\n" },
		timeout    => $o{timeout} // 20,
		wrapper    => $o{wrapper} // [],
		events     => {},
		checks     => [],
		kids       => {},
		owner      => $$,
	}, $class;
	$self->{tmp} = PgSlab::Test::Cluster::make_temp_dir('pgslab_ledger');
	return $self;
}

sub seed { $_[0]{seed} }
sub proxy { $_[0]{proxy} }
sub cluster { $_[0]{node} }
sub _diag { my ($self, $m) = @_; $self->{diag}->($_) for split /\n/, $m }

=item start_servers

Starts the cluster (role C<ledger>) and pgslab: transaction mode,
C<default_pool_size = 4>, C<server_login_retry = 1> (so a restarted
PostgreSQL is found again quickly), C<query_wait_timeout = 30>.

=cut

sub start_servers
{
	my ($self) = @_;
	my $node = $self->{node} = PgSlab::Test::Cluster->new(name => 'cledger');
	$node->start;
	$node->create_user(USER, PASSWORD);
	my $proxy = $self->{proxy} = PgSlab::Test::Proxy->new(
		cluster   => $node,
		name      => 'pledger',
		databases => { DB() => 'host=' . $node->host . ' port=' . $node->port . ' dbname=postgres' },
		settings  => {
			pool_mode          => 'transaction',
			default_pool_size  => 4,
			max_client_conn    => 300,
			server_login_retry => 1,
			query_wait_timeout => 30,
		},
		wrapper   => $self->{wrapper},
		userlist  => PgSlab::Test::Proxy::userlist_from_cluster($node, USER));
	$proxy->start(@{ $self->{wrapper} } ? (timeout => 120) : ());
	$self->{pool_size} = 4;
	return 1;
}

sub _dbh
{
	my ($self) = @_;
	my $dbh = $self->{dbh};
	return $dbh if $dbh && eval { $dbh->ping };
	# PrintWarn off: pg_terminate_backend of a backend that just left warns
	$self->{dbh} = $self->{node}->connect_dbi('postgres', attrs => { AutoInactiveDestroy => 1, PrintWarn => 0 });
	return $self->{dbh};
}

=item setup

Creates the tables (C<accounts>, C<ledger>, C<dups> with a deferred unique
constraint, C<pgb> for the loaders) owned by C<ledger>.

=cut

sub setup
{
	my ($self) = @_;
	my $dbh = $self->_dbh;
	$dbh->do($_) for (
		'CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)',
		'INSERT INTO accounts SELECT g, ' . START_BALANCE . ' FROM generate_series(1, ' . ACCOUNTS . ') g',
		'CREATE TABLE ledger (id text PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount int NOT NULL)',
		'CREATE TABLE dups (k int UNIQUE DEFERRABLE INITIALLY DEFERRED)',
		'CREATE TABLE pgb (id int PRIMARY KEY, n bigint NOT NULL)',
		'INSERT INTO pgb SELECT g, 0 FROM generate_series(1, 1000) g',
		'CREATE TABLE big (v text)',
		"INSERT INTO big SELECT repeat('x', 200) FROM generate_series(1, 3000)",
	);
	$dbh->do("ALTER TABLE $_ OWNER TO " . USER) for qw(accounts ledger dups pgb big);
	open(my $fh, '>', "$self->{tmp}/pgb.sql") or croak "pgb.sql: $!";
	print $fh "\\set aid random(1, 1000)\nBEGIN;\nUPDATE pgb SET n = n + 1 WHERE id = :aid;\n"
	    . "SELECT n FROM pgb WHERE id = :aid;\nEND;\n";
	close $fh;
	return 1;
}

# ---------------------------------------------------------------------------
# Wire helpers

# Reads until <$n> ReadyForQuery (or EOF, a bad length, a timeout):
# { tags => [...], errors => [fields...], status => 'I'|'T'|'E', ready => n,
#   lost => 'EOF'|'TIMEOUT'|'BADLEN' or undef, rows => [[...]] }.
sub _read_replies
{
	my ($s, $n, $timeout) = @_;
	my $deadline = time + $timeout;
	my %r = (tags => [], errors => [], ready => 0, rows => []);
	while ($r{ready} < $n) {
		my $left = $deadline - time;
		if ($left <= 0) { $r{lost} = 'TIMEOUT'; last }
		my ($t, $b) = read_msg($s, $left);
		if ($t eq 'EOF' || $t eq 'TIMEOUT' || $t eq 'BADLEN') { $r{lost} = $t; last }
		if ($t eq 'C') { my $tag = $b; $tag =~ s/\0.*//s; push @{ $r{tags} }, $tag }
		elsif ($t eq 'E') { push @{ $r{errors} }, parse_fields($b) }
		elsif ($t eq 'Z') { $r{ready}++; $r{status} = $b }
		elsif ($t eq 'T') {
			my ($cnt, $rest) = unpack('n a*', $b);
			my @names;
			for (1 .. $cnt) {
				my ($name, $tail) = $rest =~ /^([^\0]*)\0(.*)$/s or last;
				push @names, $name;
				$rest = substr($tail, 18);
			}
			$r{cols} = \@names;
		}
		elsif ($t eq 'D') { push @{ $r{rows} }, parse_datarow($b) }
	}
	return \%r;
}

# An error that ends the session or says nothing about the transaction's fate.
sub _fatal_error
{
	my ($e) = @_;
	return 1 if ($e->{S} // '') =~ /^(FATAL|PANIC)$/ || ($e->{V} // '') =~ /^(FATAL|PANIC)$/;
	return ($e->{C} // '') =~ /^(08|57|58|XX)/ ? 1 : 0;
}

sub _login
{
	my ($host, $port, $user, $pw, $db) = @_;
	my $s = eval { raw_connect($host, $port) } or return undef;
	my $o = scram_login($s, $user, $pw, database => $db);
	return $s if $o->{ready};
	close $s;
	return undef;
}

sub _ext
{
	my ($sql) = @_;
	return ext_query($sql);
}

# ---------------------------------------------------------------------------
# Writers

# One writer process: transfers until <$deadline>, journal in <$file>.
sub _writer_main
{
	my ($self, $w, $inc, $deadline) = @_;
	srand($self->{seed} * 7 + $w * 7919 + $inc * 104729);
	open(my $j, '>>', "$self->{tmp}/w$w.$inc.journal") or POSIX::_exit(2);
	$j->autoflush(1);
	my $p = $self->{proxy};
	my ($host, $port) = ($p->host, $p->port);
	my $s;
	my $seq = 0;
	my $tries = 0;
	while (time < $deadline && $seq < 1_000_000 && $tries < 1_000_000) {
		$tries++;
		unless ($s) {
			$s = _login($host, $port, USER, PASSWORD, DB);
			unless ($s) { print $j "L\n"; sleep(0.05 + rand 0.2); next }
		}
		my $id = "$w.$inc." . ++$seq;
		my ($a, $b) = (1 + int rand ACCOUNTS, 1 + int rand ACCOUNTS);
		($a, $b) = ($b, $a) if $a > $b;
		my $amt = 1 + int rand 100;
		my $r = rand;
		my $fault = $r < 0.05 ? 'error' : $r < 0.10 ? 'commitfail' : $r < 0.14 ? 'rollback' : 'none';
		my @st = ('BEGIN',
			"UPDATE accounts SET balance = balance - $amt WHERE id = $a",
			"UPDATE accounts SET balance = balance + $amt WHERE id = $b",
			"INSERT INTO ledger VALUES ('$id', $a, $b, $amt)");
		push @st, 'SELECT 1/0' if $fault eq 'error';
		push @st, 'INSERT INTO dups VALUES (1), (1)' if $fault eq 'commitfail';
		push @st, $fault eq 'rollback' ? 'ROLLBACK' : 'COMMIT';
		my $shape = ('steps', 'one', 'xsteps', 'pipeline')[int rand 4];
		print $j "B $id\n";
		my $outcome = _run_tx($s, $j, $id, \@st, $shape, $self->{timeout});
		print $j "$outcome $id\n";
		if ($outcome eq 'A' || $outcome eq 'U') {
			close $s;
			$s = undef;
			sleep(0.01 + rand 0.05);
		} elsif (rand() < 0.08) {
			raw_send($s, frontend_message('X', ''));
			close $s;
			$s = undef;
		}
	}
	raw_send($s, frontend_message('X', '')) if $s;
	close $j;
	POSIX::_exit(0);
}

# Runs one transaction; returns C, F, A or U (see the description).
sub _run_tx
{
	my ($s, $j, $id, $st, $shape, $timeout) = @_;
	my $last = $#$st;
	my $commit = $st->[$last] eq 'COMMIT';
	my $sent_commit = 0;
	my $finish = sub {
		my ($r) = @_;
		my $dead = $r->{lost} || grep { _fatal_error($_) } @{ $r->{errors} };
		return $sent_commit && $commit ? 'U' : 'A' if $dead;
		return undef;
	};
	if ($shape eq 'one' || $shape eq 'pipeline') {
		my $msg;
		if ($shape eq 'one') {
			$msg = frontend_message('Q', join('; ', @$st) . "\0");
		} else {
			$msg = join('', map { _ext($_) } @$st) . msg_sync();
		}
		print $j "S $id\n";
		$sent_commit = 1;
		my $r = raw_send($s, $msg) ? _read_replies($s, 1, $timeout) : { lost => 'EOF', errors => [] };
		my $d = $finish->($r);
		return $d if $d;
		return _after($s, $r, $commit, $timeout);
	}
	for my $i (0 .. $last) {
		if ($i == $last) {
			print $j "S $id\n";
			$sent_commit = 1;
		} elsif (rand() < 0.15) {
			sleep(rand 0.02);
		}
		my $msg = $shape eq 'steps' ? frontend_message('Q', "$st->[$i]\0") : _ext($st->[$i]) . msg_sync();
		my $r = raw_send($s, $msg) ? _read_replies($s, 1, $timeout) : { lost => 'EOF', errors => [] };
		my $d = $finish->($r);
		return $d if $d;
		return _after($s, $r, $commit, $timeout) if $i == $last;
		if (@{ $r->{errors} }) {
			# An ERROR before COMMIT: roll back; never committed.
			raw_send($s, frontend_message('Q', "ROLLBACK\0"));
			my $rb = _read_replies($s, 1, $timeout);
			return $rb->{lost} || grep({ _fatal_error($_) } @{ $rb->{errors} }) ? 'A' : 'F';
		}
	}
	return 'F';
}

# The reply to the message that carried COMMIT (or ROLLBACK) has come.
sub _after
{
	my ($s, $r, $commit, $timeout) = @_;
	my $committed = $commit && !@{ $r->{errors} } && grep { $_ eq 'COMMIT' } @{ $r->{tags} };
	if (($r->{status} // 'I') ne 'I') {
		raw_send($s, frontend_message('Q', "ROLLBACK\0"));
		my $rb = _read_replies($s, 1, $timeout);
		# the connection may go, but the answer was already complete
	}
	return $committed ? 'C' : 'F';
}

sub _spawn
{
	my ($self, $what, $code) = @_;
	my $pid = fork;
	croak "fork: $!" unless defined $pid;
	if ($pid == 0) {
		$SIG{$_} = 'DEFAULT' for qw(INT TERM);
		eval { $code->() };
		POSIX::_exit(0);
	}
	$self->{kids}{$pid} = $what;
	return $pid;
}

sub _spawn_writer
{
	my ($self, $w) = @_;
	my $inc = ++$self->{inc}[$w];
	my $pid = $self->_spawn("writer $w.$inc", sub { $self->_writer_main($w, $inc, $self->{deadline}) });
	$self->{writer_pid}[$w] = $pid;
	return $pid;
}

sub _loader_main
{
	my ($self, $i) = @_;
	my $mode = (qw(simple extended prepared))[$i % 3];
	my $p = $self->{proxy};
	open(my $out, '>>', "$self->{tmp}/loader$i.stats") or return;
	$out->autoflush(1);
	for (1 .. 10000) {
		my $left = int($self->{deadline} - time);
		last if $left < 1;
		my $t = $left < 8 ? $left : 8;
		my ($rc, $o, $e) = $p->pgbench('-n', '-f', "$self->{tmp}/pgb.sql", '-c', 2, '-j', 1,
			'-T', $t, '-M', $mode, '-U', USER, DB,
			{ timeout => $t + 40, env => { PGPASSWORD => PASSWORD, PGDATABASE => DB } });
		my ($n) = $o =~ /number of transactions actually processed: (\d+)/;
		print $out "$mode " . ($n // 0) . " $rc\n";
		sleep(0.2) if $rc;
	}
}

# ---------------------------------------------------------------------------
# Console

sub _console
{
	my ($self, $sql, $timeout) = @_;
	for (1 .. 2) {
		my $s = $self->{console} //= _login($self->{proxy}->host, $self->{proxy}->port,
			$self->{node}->superuser, $self->{node}->superuser_password, 'pgslab');
		return { lost => 'LOGIN', errors => [] } unless $s;
		my $r = raw_query($s, $sql) ? _read_replies($s, 1, $timeout // 10) : { lost => 'EOF', errors => [] };
		return $r unless $r->{lost};
		close $s;
		$self->{console} = undef;
	}
	return { lost => 'EOF', errors => [] };
}

sub _console_ok
{
	my ($self, $sql) = @_;
	my $r = $self->_console($sql);
	my $e = $r->{errors}[0];
	return $r->{lost} ? "lost ($r->{lost})" : $e ? "error $e->{C} $e->{M}" : 'ok';
}

# ---------------------------------------------------------------------------
# The chaos schedule

sub _schedule
{
	my ($self) = @_;
	srand($self->{seed});
	my $total = 0;
	$total += $_->[1] for @KINDS;
	my @ev;
	my $t = 1.0;
	while (@ev < $self->{max_events}) {
		$t += 0.15 + rand(0.9);
		last if $t > $self->{seconds} - 2;
		my $x = rand $total;
		my $kind;
		for my $k (@KINDS) {
			$kind = $k->[0];
			last if ($x -= $k->[1]) < 0;
		}
		push @ev, { t => $t, kind => $kind, x => int rand 1_000_000, d => rand };
	}
	for my $i (1 .. $self->{restarts}) {
		my $at = $self->{seconds} * $i / ($self->{restarts} + 1) + rand 2;
		push @ev, { t => $at, kind => 'pg_restart', x => int rand 1_000_000, d => rand };
	}
	@ev = sort { $a->{t} <=> $b->{t} } @ev;
	$self->{schedule} = \@ev;
	return @ev;
}

=item schedule_text

The chaos schedule as lines of C<time:kind> items.

=cut

sub schedule_text
{
	my ($self) = @_;
	my @items = map { sprintf('%.1f:%s', $_->{t}, $_->{kind}) } @{ $self->{schedule} // [] };
	my @lines;
	while (@items) {
		push @lines, join(' ', splice(@items, 0, 10));
	}
	return @lines;
}

sub _count { my ($self, $kind, $n) = @_; $self->{events}{$kind} += $n // 1 }

sub _event
{
	my ($self, $ev) = @_;
	my $k = $ev->{kind};
	my $x = $ev->{x};
	my $now = time;
	if ($k eq 'terminate') {
		my $got = eval {
			my $dbh = $self->_dbh;
			my $pids = $dbh->selectcol_arrayref("SELECT pid FROM pg_stat_activity WHERE usename = '"
				. USER . "' AND backend_type = 'client backend' ORDER BY pid");
			my @victims = @$pids ? map { $pids->[($x + $_) % @$pids] } 0 .. ($x % 2) : ();
			my %seen;
			scalar grep { !$seen{$_}++ && $dbh->selectrow_array("SELECT pg_terminate_backend($_)") } @victims;
		};
		$self->_count('terminate', $got // 0);
		$self->{dbh} = undef unless defined $got;
	} elsif ($k eq 'pg_restart') {
		my $t0 = time;
		$self->{dbh} = undef;
		eval { $self->{node}->stop(mode => 'fast') };
		sleep(0.2 + $ev->{d});
		$self->{node}->start;
		$self->_count('pg_restart');
		$self->_note(sprintf('PostgreSQL restarted (%.1f s down)', time - $t0));
	} elsif ($k eq 'writer_kill' || $k eq 'writer_stop') {
		my $w = $x % $self->{writers};
		my $pid = $self->{writer_pid}[$w];
		return unless $pid && $self->{kids}{$pid};
		return if $self->{stopped}{$pid};
		if ($k eq 'writer_kill') {
			kill 'KILL', $pid;
			waitpid($pid, 0);
			delete $self->{kids}{$pid};
			$self->_count('writer_kill');
			$self->_spawn_writer($w) if time < $self->{deadline} - 1;
		} else {
			kill 'STOP', $pid;
			$self->{stopped}{$pid} = 1;
			$self->_count('writer_stop');
			$self->_later(0.2 + 1.3 * $ev->{d}, sub { kill 'CONT', $pid; delete $self->{stopped}{$pid} });
		}
	} elsif ($k eq 'pause' || $k eq 'kill_pool') {
		return $self->_event({ %$ev, kind => 'terminate' }) if $self->{paused};
		$self->{paused} = 1;
		my $hold = 0.1 + 0.9 * $ev->{d};
		if ($k eq 'pause') {
			# PAUSE answers once every server is released: on its own socket.
			my $s = _login($self->{proxy}->host, $self->{proxy}->port,
				$self->{node}->superuser, $self->{node}->superuser_password, 'pgslab');
			raw_query($s, 'PAUSE ' . DB) if $s;
			$self->_count('pause');
			$self->_later($hold, sub {
				my $res = $self->_console_ok('RESUME ' . DB);
				my $pr = $s ? _read_replies($s, 1, 10) : { lost => 'LOGIN', errors => [] };
				close $s if $s;
				$self->{paused} = 0;
				my $pe = $pr->{errors}[0];
				$self->{pause_outcomes}{$pr->{lost} ? "lost:$pr->{lost}" : $pe ? "error:$pe->{C}" : 'ok'}++;
				$self->_note("RESUME after PAUSE: $res") if $res ne 'ok';
			});
		} else {
			my $res = $self->_console_ok('KILL ' . DB);
			$self->_note("KILL: $res") if $res ne 'ok';
			$self->_count('kill_pool');
			$self->_later($hold, sub {
				my $r2 = $self->_console_ok('RESUME ' . DB);
				$self->{paused} = 0;
				$self->_note("RESUME after KILL: $r2") if $r2 ne 'ok';
			});
		}
	} elsif ($k eq 'reconnect') {
		my $res = $self->_console_ok('RECONNECT ' . DB);
		$self->_note("RECONNECT: $res") if $res ne 'ok';
		$self->_count('reconnect');
	} elsif ($k eq 'kill_client') {
		my $r = $self->_console('SHOW CLIENTS');
		my @ids;
		if (!$r->{lost} && $r->{cols}) {
			my %at = map { $r->{cols}[$_] => $_ } 0 .. $#{ $r->{cols} };
			@ids = map { $_->[ $at{id} ] } grep { $_->[ $at{user} ] eq USER } @{ $r->{rows} };
		}
		return unless @ids;
		my $res = $self->_console_ok('KILL_CLIENT ' . $ids[$x % @ids]);
		$self->_count('kill_client');
		$self->_note("KILL_CLIENT: $res") if $res ne 'ok' && $res !~ /client not found/;
	} elsif ($k eq 'reload' || $k eq 'reload_size') {
		if ($k eq 'reload_size') {
			my $size = (2, 3, 4, 6)[$x % 4];
			$self->{proxy}->set(default_pool_size => $size);
			$self->{proxy}->write_config;
			$self->{pool_size} = $size;
		}
		my $res = $self->_console_ok('RELOAD');
		$self->_note("RELOAD: $res") if $res ne 'ok';
		$self->_count($k);
	} elsif ($k eq 'hostile') {
		my $v = (qw(half_startup scram_abandon half_commit half_parse fin_in_tx rst_in_tx unread))[$x % 7];
		$self->_count("hostile_$v");
		$self->{hostile_seq}++;
		my $hs = $self->{hostile_seq};
		$self->_spawn("hostile $v", sub { $self->_hostile_main($v, $hs, $x) });
	}
	return 1;
}

# A raw client that leaves in the middle of something.
sub _hostile_main
{
	my ($self, $v, $hs, $x) = @_;
	srand($self->{seed} + $hs);
	my $p = $self->{proxy};
	open(my $j, '>>', "$self->{tmp}/h$hs.journal") or return;
	$j->autoflush(1);
	my $bye = sub { my ($s) = @_; ($x >> 4) % 2 ? raw_reset($s) : close($s) };
	if ($v eq 'half_startup') {
		my $s = raw_connect($p->host, $p->port);
		my $pkt = startup_packet(user => USER, database => DB);
		raw_send($s, substr($pkt, 0, 1 + $x % (length($pkt) - 1)));
		sleep(rand 0.2);
		return $bye->($s);
	}
	if ($v eq 'scram_abandon') {
		my $s = raw_connect($p->host, $p->port);
		scram_abandon($s, USER, PASSWORD,
			(qw(startup first_read init_sent cont_read final_sent))[$x % 5], database => DB);
		return $bye->($s);
	}
	my $s = _login($p->host, $p->port, USER, PASSWORD, DB) or return;
	if ($v eq 'unread') {
		raw_query($s, 'SELECT v FROM big');
		sleep(rand 0.3);
		return $bye->($s);
	}
	my $id = "h.$hs";
	print $j "B $id\n";
	raw_query($s, "BEGIN; INSERT INTO ledger VALUES ('$id', 1, 1, 0)");
	my $r = _read_replies($s, 1, $self->{timeout});
	if ($r->{lost} || @{ $r->{errors} }) { print $j "A $id\n"; return $bye->($s) }
	my $msg = $v eq 'half_commit' ? frontend_message('Q', "COMMIT\0")
	    : $v eq 'half_parse' ? frontend_message('P', "\0COMMIT\0" . pack('n', 0)) : '';
	raw_send($s, substr($msg, 0, 1 + $x % (length($msg) - 1))) if length $msg;
	print $j "A $id\n";	# a COMMIT that never arrived whole
	sleep(rand 0.1);
	return $bye->($s);
}

sub _note
{
	my ($self, $m) = @_;
	push @{ $self->{notes} }, sprintf('%.1f s: %s', time - $self->{t0}, $m);
}

sub _later
{
	my ($self, $delay, $code) = @_;
	push @{ $self->{pending} }, [ time + $delay, $code ];
}

sub _run_pending
{
	my ($self, $all) = @_;
	my @keep;
	for my $p (@{ $self->{pending} // [] }) {
		if ($all || $p->[0] <= time) { $p->[1]->() } else { push @keep, $p }
	}
	$self->{pending} = \@keep;
}

sub _reap
{
	my ($self) = @_;
	for (1 .. 1000) {
		my $pid = waitpid(-1, POSIX::WNOHANG());
		last if $pid <= 0;
		delete $self->{kids}{$pid};
	}
}

# ---------------------------------------------------------------------------
# Quiet-state snapshots

sub _pgslab_fds
{
	my ($self) = @_;
	my $pid = $self->{proxy}->pid or return -1;
	opendir(my $d, "/proc/$pid/fd") or return -1;
	my $n = grep { /^\d+$/ } readdir $d;
	closedir $d;
	return $n;
}

sub _pgslab_rss
{
	my ($self) = @_;
	my $pid = $self->{proxy}->pid or return -1;
	open(my $fh, '<', "/proc/$pid/status") or return -1;
	my ($kb) = map { /^VmRSS:\s+(\d+)/ ? $1 : () } <$fh>;
	return $kb // -1;
}

sub _pg_backends
{
	my ($self) = @_;
	return $self->_dbh->selectrow_array("SELECT count(*) FROM pg_stat_activity WHERE usename = '"
		. USER . "' AND backend_type = 'client backend'");
}

# Closes pgslab's servers (RECONNECT) and waits until none is left, here
# and in PostgreSQL; then the slab active counts and the open fds.
sub _canonical
{
	my ($self) = @_;
	my $p = $self->{proxy};
	$p->admin('RECONNECT ' . DB);
	my %snap;
	PgSlab::Test::Cluster::_poll_until(15, sub {
		my @sv = grep { $_->{database} eq DB } $p->admin_hash('SHOW SERVERS');
		return !@sv && $self->_pg_backends == 0;
	});
	# Both the slab counts (read over one console connection) and the fd
	# count (read with no console connection open) settle asynchronously.
	my $last = '';
	for (1 .. 60) {
		my %slabs = map { $_->{name} => $_->{active_objs} } $p->admin_hash('SHOW SLABS');
		sleep(0.1);
		my $fds = $self->_pgslab_fds;
		%snap = (slabs => \%slabs, fds => $fds, rss_kb => $self->_pgslab_rss,
			servers => scalar(grep { $_->{database} eq DB } $p->admin_hash('SHOW SERVERS')));
		my $key = join(',', $fds, map { "$_=$slabs{$_}" } sort keys %slabs);
		last if $key eq $last;
		$last = $key;
		sleep(0.1);
	}
	return \%snap;
}

=item baseline

Warms up (a few transactions, a psql and a pgbench run through pgslab),
then takes the quiet baseline: slab active objects and open fds with every
server closed.

=cut

sub baseline
{
	my ($self) = @_;
	my $p = $self->{proxy};
	# one SCRAM login in this process: the children inherit the key derivation
	my $s = _login($p->host, $p->port, USER, PASSWORD, DB) or croak 'warm-up login failed';
	open(my $j, '>', '/dev/null');
	for my $shape (qw(steps one xsteps pipeline)) {
		_run_tx($s, $j, "warm", [ 'BEGIN', 'SELECT 1', 'COMMIT' ], $shape, 10);
	}
	raw_send($s, frontend_message('X', ''));
	close $s;
	my $c = _login($p->host, $p->port, $self->{node}->superuser, $self->{node}->superuser_password, 'pgslab');
	close $c if $c;
	$p->safe_psql(DB, 'SELECT 1', user => USER, password => PASSWORD);
	$p->pgbench('-n', '-f', "$self->{tmp}/pgb.sql", '-t', 5, '-c', 2, '-U', USER, DB,
		{ timeout => 60, env => { PGPASSWORD => PASSWORD } });
	$self->{base} = $self->_canonical;
	return $self->{base};
}

=item run

Starts writers and loaders, runs the chaos schedule for C<seconds>, lets
every process finish (bounded), and collects the results.

=cut

sub run
{
	my ($self) = @_;
	my @ev = $self->_schedule;
	$self->_diag("seed $self->{seed}; chaos schedule (" . scalar(@ev) . " events, $self->{seconds} s):");
	$self->_diag("  $_") for $self->schedule_text;
	$self->{t0} = time;
	$self->{deadline} = $self->{t0} + $self->{seconds};
	$self->_spawn_writer($_) for 0 .. $self->{writers} - 1;
	for my $i (0 .. $self->{loaders} - 1) {
		$self->_spawn("loader $i", sub { $self->_loader_main($i) });
	}
	my $i = 0;
	my $iters = 0;
	# pgslab's RSS under load: sampled once a second, the largest kept
	my $next_rss = 0;
	$self->{rss_peak_kb} = $self->{base} ? $self->{base}{rss_kb} : -1;
	while (time < $self->{deadline} && $iters++ < 10_000_000) {
		if (time >= $next_rss) {
			my $kb = $self->_pgslab_rss;
			$self->{rss_peak_kb} = $kb if $kb > $self->{rss_peak_kb};
			$next_rss = time + 1;
		}
		$self->_run_pending(0);
		while ($i < @ev && $ev[$i]{t} <= time - $self->{t0} && time < $self->{deadline}) {
			my $e = $ev[$i++];
			eval { $self->_event($e); 1 } or $self->_note("event $e->{kind} failed: $@");
		}
		$self->_reap;
		sleep(0.01);
	}
	$self->_run_pending(1);
	kill 'CONT', $_ for keys %{ $self->{kids} };
	$self->{node}->start unless $self->{node}->is_running;
	$self->{chaos_seconds} = time - $self->{t0};
	$self->{rss_load_end_kb} = $self->_pgslab_rss;
	# Writers stop at the deadline by themselves; a reply waits at most
	# <timeout>; pgbench runs are bounded by their own -T and a kill.
	my $limit = time + 3 * $self->{timeout} + 60;
	while (%{ $self->{kids} } && time < $limit) {
		$self->_reap;
		sleep(0.05);
	}
	$self->{stuck} = [ sort values %{ $self->{kids} } ];
	for my $pid (keys %{ $self->{kids} }) {
		kill 'KILL', $pid;
		waitpid($pid, 0);
	}
	$self->{kids} = {};
	close $self->{console} if $self->{console};
	$self->{console} = undef;
	return 1;
}

# ---------------------------------------------------------------------------
# Checks

sub _check
{
	my ($self, $name, $ok, $detail, %o) = @_;
	push @{ $self->{checks} }, { name => $name, ok => $ok ? 1 : 0, detail => $detail // '', %o };
	return $ok;
}

sub _journals
{
	my ($self) = @_;
	my (%state, %count);
	opendir(my $d, $self->{tmp}) or croak "$self->{tmp}: $!";
	for my $f (sort grep { /\.journal$/ } readdir $d) {
		open(my $fh, '<', "$self->{tmp}/$f") or next;
		while (my $l = <$fh>) {
			chomp $l;
			if ($l eq 'L') { $count{login_fail}++; next }
			my ($st, $id) = split / /, $l, 2;
			next unless defined $id && $id ne 'warm';
			$state{$id} = $st;
		}
		close $fh;
	}
	closedir $d;
	# a journal ending at B: killed before COMMIT went out; at S: unknown
	for my $id (keys %state) {
		$state{$id} = 'A' if $state{$id} eq 'B';
		$state{$id} = 'U' if $state{$id} eq 'S';
		$count{$state{$id}}++;
	}
	return (\%state, \%count);
}

=item check

Runs every check (see the description) and returns the list of results:
hashrefs C<{ name, ok, detail }>.

=cut

sub check
{
	my ($self) = @_;
	my $p = $self->{proxy};
	my $node = $self->{node};
	$self->{checks} = [];

	$self->_check('no process was left hanging after the chaos phase', !@{ $self->{stuck} },
		'still running: ' . join(', ', @{ $self->{stuck} }));
	$self->_check('pgslab is still running', $p->is_running, 'exit status ' . ($p->exit_status // '?'));
	$self->_check('PostgreSQL is running', $node->is_running);

	my $po = $self->{pause_outcomes} // {};
	my @unanswered = grep { !/^(ok|error:57014)$/ } sort keys %$po;
	$self->_check('every PAUSE was answered: PAUSE, or 57014 when RESUME came first', !@unanswered,
		join(' ', map { "$_=$po->{$_}" } @unanswered));

	# the ledger
	my ($state, $count) = $self->_journals;
	$self->{counts} = $count;
	my $dbh = $self->_dbh;
	my %in = map { $_->[0] => 1 } @{ $dbh->selectall_arrayref('SELECT id FROM ledger') };
	my (@lost, @phantom, @unknown_in);
	for my $id (sort keys %$state) {
		my $st = $state->{$id};
		if ($st eq 'C') { push @lost, $id unless $in{$id} }
		elsif ($st eq 'F' || $st eq 'A') { push @phantom, "$id($st)" if $in{$id} }
		elsif ($st eq 'U') { push @unknown_in, $id if $in{$id} }
	}
	my @stranger = grep { !exists $state->{$_} } sort keys %in;
	$self->{unknown_committed} = scalar @unknown_in;
	$self->_check("every transaction seen committed is in the ledger (" . ($count->{C} // 0) . ')',
		!@lost, 'missing: ' . join(' ', @lost[0 .. ($#lost < 20 ? $#lost : 19)]));
	$self->_check('no transaction seen failing or aborted is in the ledger ('
		. (($count->{F} // 0) + ($count->{A} // 0)) . ')', !@phantom,
		'present: ' . join(' ', @phantom[0 .. ($#phantom < 20 ? $#phantom : 19)]));
	$self->_check('no row in the ledger that no client wrote', !@stranger,
		'strangers: ' . join(' ', @stranger[0 .. ($#stranger < 20 ? $#stranger : 19)]));
	my ($sum) = $dbh->selectrow_array('SELECT sum(balance) FROM accounts');
	$self->_check('the balances still sum to their start', $sum == ACCOUNTS * START_BALANCE,
		"sum $sum, expected " . ACCOUNTS * START_BALANCE);
	my $bad = $dbh->selectall_arrayref(
		'SELECT a.id, a.balance, ' . START_BALANCE . ' + coalesce(c.s, 0) - coalesce(d.s, 0) FROM accounts a '
		. 'LEFT JOIN (SELECT dst, sum(amount) s FROM ledger GROUP BY dst) c ON c.dst = a.id '
		. 'LEFT JOIN (SELECT src, sum(amount) s FROM ledger GROUP BY src) d ON d.src = a.id '
		. 'WHERE a.balance <> ' . START_BALANCE . ' + coalesce(c.s, 0) - coalesce(d.s, 0)');
	$self->_check('every balance equals what the ledger says', !@$bad,
		join(' ', map { "account $_->[0]: $_->[1] != $_->[2]" } @$bad));

	return @{ $self->{checks} } unless $p->is_running;

	# pgslab still serves
	my ($rc, $out, $err) = $p->psql(DB, 'SELECT count(*) > 0 FROM ledger', user => USER, password => PASSWORD);
	$self->_check('psql through pgslab works', $rc == 0 && $out eq 't', "rc $rc: $err");
	($rc, $out, $err) = $p->pgbench('-n', '-f', "$self->{tmp}/pgb.sql", '-t', 50, '-c', 2, '-M', 'extended',
		'-U', USER, DB, { timeout => 120, env => { PGPASSWORD => PASSWORD } });
	my ($n) = $out =~ /number of transactions actually processed: (\d+)/;
	$self->_check('pgbench -t 50 -c 2 through pgslab completes', $rc == 0 && ($n // 0) == 100,
		"rc $rc, processed " . ($n // '?') . ": $err");

	# counters once quiet
	my ($why, %last);
	PgSlab::Test::Cluster::_poll_until(20, sub {
		my @pools = grep { $_->{database} eq DB } $p->admin_hash('SHOW POOLS');
		my @sv = grep { $_->{database} eq DB } $p->admin_hash('SHOW SERVERS');
		my @cl = $p->admin_hash('SHOW CLIENTS');
		my %lists = map { $_->{list} => $_->{items} } $p->admin_hash('SHOW LISTS');
		# SHOW POOLS lists the console's own pool first; SHOW LISTS counts real pools
		my @allpools = grep { !($_->{database} eq 'pgslab' && $_->{user} eq 'pgslab') } $p->admin_hash('SHOW POOLS');
		my @allsv = $p->admin_hash('SHOW SERVERS');
		my $pg = $self->_pg_backends;
		my $sv_sum = 0;
		for my $po (@pools) { $sv_sum += $po->{$_} for qw(sv_active sv_idle sv_used sv_tested sv_login) }
		my @busy = grep { $_->{cl_active} || $_->{cl_waiting} || $_->{sv_active} || $_->{sv_login} } @pools;
		my @waiting = grep { $_->{state} ne 'active' || $_->{database} ne 'pgslab' } @cl;
		%last = (pools => \@pools, servers => scalar @sv, pg => $pg, lists => \%lists, clients => \@cl,
			sv_sum => $sv_sum);
		$why = @busy ? 'pool not idle: ' . join('; ', map { my $r = $_; join(' ', map { "$_=$r->{$_}" }
			    qw(user cl_active cl_waiting sv_active sv_idle sv_used sv_login)) } @busy)
		    : @waiting ? 'clients left: ' . join(', ', map { "$_->{user}/$_->{database}/$_->{state}" } @waiting)
		    : $sv_sum != @sv ? "SHOW POOLS counts $sv_sum servers, SHOW SERVERS lists " . scalar(@sv)
		    : @sv != $pg ? 'SHOW SERVERS lists ' . scalar(@sv) . " servers, pg_stat_activity has $pg"
		    : $lists{used_servers} != @allsv ? "SHOW LISTS used_servers=$lists{used_servers}, SHOW SERVERS lists " . scalar(@allsv)
		    : $lists{used_clients} != @cl + $lists{login_clients} ? "SHOW LISTS used_clients=$lists{used_clients}, SHOW CLIENTS lists " . scalar(@cl)
		    : $lists{pools} != @allpools ? "SHOW LISTS pools=$lists{pools}, SHOW POOLS lists " . scalar(@allpools)
		    : $lists{login_clients} != 0 ? "login_clients=$lists{login_clients}"
		    : undef;
		return !defined $why;
	});
	$self->{quiet} = \%last;
	$self->_check('once quiet: no client waits or is left, SHOW POOLS = SHOW SERVERS = pg_stat_activity '
		. "($last{servers} servers), SHOW LISTS consistent", !defined $why, $why);

	# slabs and fds against the baseline, every server closed
	# (a few tries: a leak stays, a connection still closing does not)
	my $base = $self->{base};
	my ($now, @grew);
	for (1 .. 5) {
		$now = $self->_canonical;
		@grew = grep { ($now->{slabs}{$_} // 0) != ($base->{slabs}{$_} // 0) }
		    grep { my $c = $_; $c =~ /^buf-/ || grep { $_ eq $c } @LEAK_CACHES } sort keys %{ $now->{slabs} };
		last if !@grew && $now->{fds} == $base->{fds};
		sleep(1);
	}
	$self->{final} = $now;
	$self->_check('slab caches back at the baseline (' . join(' ', map { "$_=$base->{slabs}{$_}" }
		grep { $base->{slabs}{$_} } sort keys %{ $base->{slabs} }) . ')', !@grew,
		join(', ', map { "$_: " . ($base->{slabs}{$_} // 0) . " -> $now->{slabs}{$_}" } @grew));
	$self->_check("open file descriptors back at the baseline ($base->{fds})", $now->{fds} == $base->{fds},
		"$base->{fds} -> $now->{fds}");
	my $san = PgSlab::Test::Ledger->sanitizer_report($p);
	$self->_check('no sanitizer report in pgslab\'s log', !defined $san, $san);
	return @{ $self->{checks} };
}

=item sanitizer_report($proxy)

As in L<PgSlab::Test::Differential>: the first lines of an ASan/UBSan
report in the proxy's log, or undef.

=cut

sub sanitizer_report
{
	my ($class, $proxy) = @_;
	require PgSlab::Test::Differential;
	return PgSlab::Test::Differential->sanitizer_report($proxy);
}

=item report

Lines summarizing the run: transactions by outcome, unknowns found
committed, pgbench transactions, chaos events by kind, notes.

=back

=cut

sub report
{
	my ($self) = @_;
	my $c = $self->{counts} // {};
	my @r;
	push @r, sprintf('seed %d, chaos %.0f s: transactions committed=%d failed=%d aborted=%d unknown=%d '
		. '(%d of them committed), login failures=%d',
		$self->{seed}, $self->{chaos_seconds} // 0, map({ $c->{$_} // 0 } qw(C F A U)),
		$self->{unknown_committed} // 0, $c->{login_fail} // 0);
	my %pgb;
	opendir(my $d, $self->{tmp});
	for my $f (grep { /^loader\d+\.stats$/ } readdir $d) {
		open(my $fh, '<', "$self->{tmp}/$f") or next;
		while (<$fh>) { my ($m, $n, $rc) = split; $pgb{$m} += $n; $pgb{"${m}_runs"}++; $pgb{"${m}_failed_runs"}++ if $rc }
	}
	push @r, 'pgbench: ' . join(' ', map { "$_=$pgb{$_}" } sort keys %pgb);
	my $e = $self->{events};
	push @r, 'chaos events: ' . join(' ', map { "$_=$e->{$_}" } sort keys %$e);
	my $po = $self->{pause_outcomes} // {};
	push @r, 'PAUSE replies: ' . join(' ', map { "$_=$po->{$_}" } sort keys %$po) if %$po;
	my ($b, $f) = ($self->{base}, $self->{final});
	push @r, 'slabs baseline/final: ' . join(' ', map { "$_=$b->{slabs}{$_}/" . ($f->{slabs}{$_} // '?') }
		grep { $b->{slabs}{$_} || ($f->{slabs}{$_} // 0) } sort keys %{ $b->{slabs} }) if $b && $f;
	push @r, "fds baseline/final: $b->{fds}/$f->{fds}; RSS kB baseline/final: $b->{rss_kb}/$f->{rss_kb}" if $b && $f;
	push @r, sprintf('RSS kB: baseline %d, peak under load %d (sampled once a second), at the end of the chaos phase %d, '
		. 'final (load ended, servers closed) %d = %+.1f%% of the baseline',
		$b->{rss_kb}, $self->{rss_peak_kb} // -1, $self->{rss_load_end_kb} // -1,
		$f->{rss_kb}, $b->{rss_kb} > 0 ? 100 * ($f->{rss_kb} - $b->{rss_kb}) / $b->{rss_kb} : 0) if $b && $f;
	push @r, 'notes: ' . scalar(@{ $self->{notes} // [] });
	push @r, map { "  $_" } @{ $self->{notes} // [] }[0 .. ($#{ $self->{notes} // [] } < 30 ? $#{ $self->{notes} // [] } : 29)];
	return @r;
}

sub DESTROY
{
	my ($self) = @_;
	local ($@, $!, $?);
	return if ($self->{owner} // $$) != $$;
	File::Path::remove_tree($self->{tmp}) if $self->{tmp} && -d $self->{tmp} && !$ENV{PGSLAB_KEEP_TMP};
}

1;
