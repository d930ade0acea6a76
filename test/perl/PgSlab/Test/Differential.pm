# PgSlab::Test::Differential -- randomized differential protocol test: the same
# client sequences directly against PostgreSQL and through pgslab, compared.

package PgSlab::Test::Differential;

use strict;
use warnings;

use Carp qw(croak);
use Digest::MD5 qw(md5);
use Exporter qw(import);
use POSIX ();
use Storable qw(nstore retrieve);
use IO::Select;
use Time::HiRes qw(time sleep);

use PgSlab::Test::Wire;

our @EXPORT_OK = qw(generate_sequence run_sequence describe_sequence normalize_message
    compare_streams);

=pod

=head1 NAME

PgSlab::Test::Differential - random PostgreSQL v3 client sequences, run directly and through pgslab

=head1 SYNOPSIS

  use PgSlab::Test::Differential;

  my $d = PgSlab::Test::Differential->new(cluster => $node,
      proxies => [ $proxy_a, $proxy_b ], clients => 12, seed => $seed,
      user => 'dif', password => 'dif_pw', diag => \&Test::More::diag);
  $d->setup;                        # per-client tables, warm-up
  $d->run(seconds => 60, rounds => 200);
  my $s = $d->summary;              # sequences, mismatches, invariant failures

=head1 DESCRIPTION

For every round and client index a sequence of frontend messages is
generated, deterministically from C<(seed, client, round)>: simple queries
(reads, INSERTs into the client's own table, errors), extended-protocol
Parse/Bind/Describe/Execute/Close with and without Sync, Flush, errors in
the middle of a pipeline, several Syncs in one write, Query and extended
batches pipelined in one write, COPY FROM STDIN and COPY TO STDOUT through
both protocols (with CopyFail and bad data), cursors inside BEGIN,
BEGIN/COMMIT/ROLLBACK, SET/RESET of the parameters pgslab tracks and
SET LOCAL, and an ending: Terminate after everything was answered, or
leaving early (Terminate, FIN or RST, possibly with a partial message, with
unanswered or uncommitted work, or in the middle of a COPY).

Each round runs every client's sequence on its own connection directly
against PostgreSQL (all clients at once, one forked process each, table
C<dt_I>), then through one of the proxies (all at once again, table
C<pt_I>), and compares the normalized reply streams.  Only replies read
before the client left are compared: the generator reads only at points
where everything sent so far will be answered, and leaves only with work
whose outcome cannot depend on pooling (unanswered reads, uncommitted
writes).

After each round: the two tables of every client hold the same rows; no
row the generator knows to be rolled back or left uncommitted by a client
that left is visible; on the proxy's admin console the pool returns to
idle (no client of the test user, no active or waiting client, no server
linked to a client, no server in login), and the active objects of every
slab cache stay at their baseline (taken after warm-up; a small slack for
the pool's servers, which may be replaced).

Pool independence: sequences keep all session state inside a transaction
(named statements and portals are used only while the same server is held:
within one Sync batch, or inside an explicit transaction), and set session
parameters only with SET/RESET of parameters pgslab tracks and replays
(application_name, DateStyle, TimeZone, IntervalStyle,
standard_conforming_strings, client_encoding), or with SET LOCAL.

=head2 Normalization

Messages are compared as strings: the type, then for RowDescription the
column names, type OIDs and formats (not the table OID and column number:
the two tables differ), for DataRow and CopyData the values, for
CommandComplete the tag, for ErrorResponse and NoticeResponse the severity
and SQLSTATE (not the text, which names the table), for ParameterStatus
name and value, for ReadyForQuery the status.  BackendKeyData and the
startup messages are not compared (the login is not part of a sequence).

=cut

# ------------------------------------------------------------------------------------------
# Deterministic PRNG (xorshift32): the same sequence on every platform and Perl.

sub _rng
{
	my (@parts) = @_;
	my $x = unpack('N', md5(join(':', @parts))) || 0x9e3779b9;
	return \$x;
}

sub _rand
{
	my ($r, $n) = @_;
	my $x = $$r;
	$x ^= ($x << 13) & 0xffffffff;
	$x ^= $x >> 17;
	$x ^= ($x << 5) & 0xffffffff;
	$$r = $x;
	return $n ? $x % $n : $x;
}

sub _chance { my ($r, $pct) = @_; return _rand($r, 100) < $pct }
sub _pick   { my ($r, @a) = @_; return $a[ _rand($r, scalar @a) ] }

# ------------------------------------------------------------------------------------------
# Generator

=pod

=head1 FUNCTIONS

=over

=item generate_sequence(seed => S, client => C, round => R)

Returns a hashref: C<steps> (arrayref of steps, see below), C<invisible>
(ids that must never be visible in the client's table: rolled back, or
written in the transaction the client left open) and C<desc> (one line per
step, for diag).

A step is a hashref with C<op>: C<send> (C<msgs>: arrayref of
C<[type, body]>; C<%T> in a body is the table name), C<wait> (read until
everything sent is answered), C<wait_copy> (read until CopyInResponse or
until everything is answered), C<copy_data> (C<msgs>, sent only if the
last C<wait_copy> saw CopyInResponse), C<partial> (C<msg>, C<frac>: that
fraction of the message's bytes) or C<leave> (C<how>: C<X> Terminate and
close, C<fin> close, C<rst> close with SO_LINGER 0).

=cut

my @TRACKED_SETS = (
	[ 'application_name', sub { my ($g) = @_; "'app_c$g->{client}_" . _rand($g->{r}, 1000) . "'" } ],
	[ 'DateStyle',     sub { _pick($_[0]{r}, "'ISO, MDY'", "'German'", "'SQL, DMY'", "'Postgres, YMD'") } ],
	[ 'TimeZone',      sub { _pick($_[0]{r}, "'UTC'", "'Europe/Berlin'", "'America/New_York'", "'Asia/Tokyo'") } ],
	[ 'IntervalStyle', sub { _pick($_[0]{r}, "'postgres'", "'iso_8601'", "'sql_standard'", "'postgres_verbose'") } ],
	[ 'standard_conforming_strings', sub { _pick($_[0]{r}, 'on', 'off') } ],
	[ 'client_encoding', sub { _pick($_[0]{r}, "'UTF8'", "'LATIN1'", "'SQL_ASCII'") } ],
);

# search_path keeps the client's table reachable: through a pooler with
# shared prepared statements a Parse the backend already holds succeeds
# whatever the search_path, and a table it no longer finds fails the Bind
# instead (README, "Prepared statements"; PgBouncer does the same).
my @LOCAL_SETS = (
	"search_path = pg_catalog, public", "search_path = public", "work_mem = '8MB'",
	"statement_timeout = '1h'", "DateStyle = 'SQL, DMY'", "application_name = 'local'",
	"TimeZone = 'Pacific/Auckland'", "enable_seqscan = off", "extra_float_digits = 0",
);

# Read-only statements whose result depends only on the client's table and settings.
sub _read_sql
{
	my ($g) = @_;
	my $r = $g->{r};
	my $k = _rand($r, 10);
	return 'SELECT ' . _rand($r, 100000) . " AS n, 'c$g->{client}' AS c" if $k == 0;
	return 'SELECT count(*), coalesce(sum(id), 0), max(v) FROM %T' if $k == 1;
	return 'SELECT id, v, n FROM %T ORDER BY id' if $k == 2;
	if ($k == 3) {
		my $n = _chance($r, 15) ? 200 + _rand($r, 2800) : 1 + _rand($r, 20);
		return "SELECT g, repeat('x', g % 61) FROM generate_series(1, $n) g";
	}
	return "SELECT current_setting('application_name'), current_setting('DateStyle'), "
	    . "current_setting('TimeZone'), current_setting('IntervalStyle'), "
	    . "current_setting('client_encoding'), current_setting('standard_conforming_strings'), "
	    . "current_setting('search_path'), current_setting('work_mem')" if $k == 4;
	return "SELECT '2021-03-04 05:06:07+00'::timestamptz, date '2021-03-04', "
	    . "interval '1 day 02:03:04', 'a\\b' AS s, 1.5::float8 / 3" if $k == 5;
	return 'SHOW ' . _pick($r, 'application_name', 'DateStyle', 'TimeZone', 'search_path') if $k == 6;
	return 'SELECT v FROM %T WHERE id % 2 = 0 ORDER BY id DESC LIMIT 3' if $k == 7;
	return 'VALUES (1, NULL), (2, \'two\')' if $k == 8;
	return 'SELECT txid_current_if_assigned() IS NULL AS ro';
}

# Statements that always fail, with their SQLSTATE.
sub _error_sql
{
	my ($g) = @_;
	return _pick($g->{r}, 'SELECT 1/0', 'SELEC 1', 'SELECT * FROM no_such_table_dif',
		'INSERT INTO %T (id, v, n) VALUES (' . $g->_next_id . ", 'bad', -1)",
		"SELECT 'abc'::int", 'SELECT no_such_column FROM %T');
}

sub _next_id { my ($g) = @_; return ++$g->{id} }

# INSERT of 1-3 fresh ids; returns (sql, ids).
sub _insert_sql
{
	my ($g) = @_;
	my @ids = map { $g->_next_id } 1 .. 1 + _rand($g->{r}, 3);
	my $vals = join(', ', map { "($_, 'r$g->{round}c$g->{client}i$_', $_ % 7)" } @ids);
	return ("INSERT INTO %T (id, v, n) VALUES $vals", @ids);
}

sub _cstr { return "$_[0]\0" }

sub _msg_parse
{
	my ($name, $sql, @types) = @_;
	return [ 'P', _cstr($name) . _cstr($sql) . pack('n', scalar @types) . pack('N*', @types) ];
}

sub _msg_bind
{
	my ($portal, $stmt, $params, $rfmt) = @_;
	my $b = _cstr($portal) . _cstr($stmt) . pack('n', 0) . pack('n', scalar @$params);
	for my $p (@$params) {
		$b .= defined $p ? pack('N', length $p) . $p : pack('l>', -1);
	}
	$b .= $rfmt ? pack('n n', 1, 1) : pack('n', 0);
	return [ 'B', $b ];
}

sub _msg_execute  { my ($portal, $max) = @_; return [ 'E', _cstr($portal) . pack('N', $max // 0) ] }
sub _msg_describe { my ($kind, $name) = @_; return [ 'D', $kind . _cstr($name) ] }
sub _msg_close    { my ($kind, $name) = @_; return [ 'C', $kind . _cstr($name) ] }
sub _msg_query    { my ($sql) = @_; return [ 'Q', _cstr($sql) ] }

sub generate_sequence
{
	my (%o) = @_;
	my $g = bless {
		r => _rng('dif', $o{seed}, $o{client}, $o{round}),
		client => $o{client}, round => $o{round},
		id => 0, steps => [], desc => [], invisible => [],
		pending => [],		# messages not yet written
		tx => 0,		# 0 none, 1 explicit, 2 explicit and failed
		ext_open => 0,		# extended messages since the last Sync
		ext_failed => 0,	# an error since the last Sync: skip until Sync
		answerable => 1,	# everything written will be answered without more input
		unread => 0,		# something written has not been waited for
		pend_ids => [],		# written in the open (implicit or explicit) transaction
		named => [],		# named statements usable now (same server held)
		portals => [],		# suspended named portals of the explicit transaction
		nstmt => 0, kinds => {},
	}, 'PgSlab::Test::Differential::Gen';
	my $n_items = 3 + _rand($g->{r}, 12);
	for my $i (1 .. $n_items) {
		$g->item;
		last if $g->{mid_copy};
	}
	$g->ending;
	return { steps => $g->{steps}, invisible => $g->{invisible}, desc => $g->{desc},
		kinds => $g->{kinds},
		seed => $o{seed}, client => $o{client}, round => $o{round} };
}

package PgSlab::Test::Differential::Gen;

use strict;
use warnings;

BEGIN {
	no strict 'refs';
	*{$_} = \&{"PgSlab::Test::Differential::$_"} for qw(_rand _chance _pick _read_sql
	    _error_sql _next_id _insert_sql _msg_parse _msg_bind _msg_execute _msg_describe
	    _msg_close _msg_query);
}

sub note { my ($g, $d) = @_; push @{ $g->{desc} }, $d }

# The sequence ends in the middle of this COPY: send only its data messages
# (no CopyDone/CopyFail/Sync), then leave; its replies are never seen.
sub leave_mid_copy
{
	my ($g, $data, $ids) = @_;
	$g->{mid_copy} = 1;
	pop @$data while @$data && $data->[-1][0] ne 'd';
	push @{ $g->{steps} }, { op => 'copy_data', msgs => $data };
	$g->note('  copy data (' . scalar(@$data) . ' messages), then leave');
	push @{ $g->{invisible} }, @$ids;
	@$g{qw(unread answerable)} = (0, 0);
	return;
}

sub add
{
	my ($g, $desc, @msgs) = @_;
	push @{ $g->{pending} }, @msgs;
	$g->note("  $desc");
	my $last = $msgs[-1][0];
	$g->{answerable} = ($last eq 'Q' || $last eq 'S' || $last eq 'H') ? 1 : 0
	    if $last =~ /^[QSHPBEDC]$/;
	$g->{unread} = 1;
}

sub flush_send
{
	my ($g) = @_;
	return unless @{ $g->{pending} };
	my %st = (op => 'send', msgs => $g->{pending});
	# sometimes written in pieces with pauses: message boundaries cut anywhere
	$st{split} = [ map { (1 + _rand($g->{r}, 999)) / 1000 } 1 .. 1 + _rand($g->{r}, 3) ]
	    if _chance($g->{r}, 15);
	push @{ $g->{steps} }, \%st;
	$g->note('send (' . join('', map { $_->[0] } @{ $g->{pending} }) . ')'
		. ($st{split} ? ' in ' . (1 + @{ $st{split} }) . ' pieces' : ''));
	$g->{pending} = [];
}

sub wait
{
	my ($g) = @_;
	$g->flush_send;
	return unless $g->{unread};
	my %st = (op => 'wait');
	# a slow reader: pgslab has to hold (or block on) the replies meanwhile
	$st{pause} = (5 + _rand($g->{r}, 60)) / 1000 if _chance($g->{r}, 10);
	push @{ $g->{steps} }, \%st;
	$g->note($st{pause} ? "wait (after ${\ int($st{pause} * 1000)} ms)" : 'wait');
	$g->{unread} = 0;
}

# Work is rolled back: remember its ids as never visible.
sub rollback_pending
{
	my ($g) = @_;
	push @{ $g->{invisible} }, @{ $g->{pend_ids} };
	$g->{pend_ids} = [];
}

sub commit_pending { $_[0]{pend_ids} = [] }

sub end_tx
{
	my ($g, $commit) = @_;
	$commit ? $g->commit_pending : $g->rollback_pending;
	$g->{tx} = 0;
	$g->{named} = [];
	$g->{portals} = [];
}

# Before a simple Query: close an open extended batch with a Sync.
sub need_simple
{
	my ($g) = @_;
	$g->sync if $g->{ext_open};
}

sub sync
{
	my ($g) = @_;
	$g->add('Sync', [ 'S', '' ]);
	if ($g->{tx} == 0) {
		$g->{ext_failed} ? $g->rollback_pending : $g->commit_pending;
		$g->{named} = [];
	}
	$g->{ext_open} = 0;
	$g->{ext_failed} = 0;
}

# An error happened (or the statement failed) at this point.
sub failed_here
{
	my ($g, $ext) = @_;
	$g->{tx} = 2 if $g->{tx} == 1;
	$g->{ext_failed} = 1 if $ext;
}

# Maybe read now (when everything written will be answered), else keep pipelining.
sub maybe_wait
{
	my ($g) = @_;
	if ($g->{answerable} && _chance($g->{r}, 60)) {
		$g->wait;
	}
}

# One random item.
sub item
{
	my ($g) = @_;
	my $r = $g->{r};
	my $k = _rand($r, 100);
	if ($g->{tx} == 2 && _chance($r, 50)) {
		$g->{kinds}{q_end_failed_tx}++;
		my $end = _pick($r, 'ROLLBACK', 'COMMIT', 'ROLLBACK');
		$g->simple($end, 0);
		$g->end_tx(0);
		return $g->maybe_wait;
	}
	if ($g->{tx} == 1 && @{ $g->{portals} } && _chance($r, 40)) {
		$g->{kinds}{e_portal_resume}++;
		$g->e_portal_resume;
		return $g->maybe_wait;
	}
	my $m = $k < 12 ? 'q_read' : $k < 22 ? 'q_write' : $k < 27 ? 'q_error' : $k < 33 ? 'q_multi'
	    : $k < 40 ? 'q_tx' : $k < 46 ? 'q_set' : $k < 50 ? 'q_cursor' : $k < 55 ? 'q_copy_in'
	    : $k < 58 ? 'q_copy_out' : $k < 80 ? 'e_batch' : $k < 86 ? 'e_copy_in'
	    : $k < 89 ? 'e_copy_out' : $k < 92 ? 'q_empty' : 'e_pipeline_syncs';
	$g->{kinds}{$m}++;
	$g->$m;
	$g->maybe_wait;
}

# Simple query of statements; @ids are written by it if it succeeds.
sub simple
{
	my ($g, $sql, $fails, @ids) = @_;
	$g->need_simple;
	$g->add("Q $sql", _msg_query($sql));
	if ($g->{tx} == 2) {
		push @{ $g->{invisible} }, @ids;
		return;
	}
	if ($fails) {
		push @{ $g->{invisible} }, @ids;
		$g->failed_here(0);
		return;
	}
	if ($g->{tx} == 1) {
		push @{ $g->{pend_ids} }, @ids;
	}
}

sub q_empty { my ($g) = @_; $g->simple('', 0) }
sub q_read  { my ($g) = @_; $g->simple($g->_read_sql, 0) }
sub q_write { my ($g) = @_; my ($sql, @ids) = $g->_insert_sql; $g->simple($sql, 0, @ids) }
sub q_error { my ($g) = @_; $g->simple($g->_error_sql, 1) }

sub q_multi
{
	my ($g) = @_;
	my (@parts, @ids);
	my $fails = 0;
	for (1 .. 2 + _rand($g->{r}, 3)) {
		my $k = _rand($g->{r}, 10);
		if ($k < 4) {
			my ($sql, @i) = $g->_insert_sql;
			push @parts, $sql;
			push @ids, @i;
		} elsif ($k < 8) {
			push @parts, $g->_read_sql;
		} else {
			push @parts, $g->_error_sql;
			$fails = 1;
			last;
		}
	}
	# Outside a transaction the whole Query is one implicit transaction.
	$g->simple(join('; ', @parts), $fails, @ids);
}

sub q_tx
{
	my ($g) = @_;
	my $k = _rand($g->{r}, 10);
	if ($g->{tx} == 0 && $k < 2) {
		# a whole transaction in one Query
		my ($sql, @ids) = $g->_insert_sql;
		my $end = _pick($g->{r}, 'COMMIT', 'ROLLBACK', 'END');
		$g->simple("BEGIN; $sql; " . $g->_read_sql . "; $end", 0);
		if ($end eq 'ROLLBACK') { push @{ $g->{invisible} }, @ids }
		return;
	}
	if ($g->{tx} == 0 && $k < 7) {
		my $b = _pick($g->{r}, 'BEGIN', 'START TRANSACTION', 'BEGIN ISOLATION LEVEL REPEATABLE READ',
			'BEGIN READ WRITE');
		$g->simple($b, 0);
		$g->{tx} = 1;
		$g->{pend_ids} = [];
		$g->{named} = [];
		return;
	}
	my $end = _pick($g->{r}, 'COMMIT', 'ROLLBACK', 'COMMIT', 'END', 'ABORT', 'BEGIN');
	$g->simple($end, 0);
	return if $end eq 'BEGIN' && $g->{tx} == 0 && do { $g->{tx} = 1; $g->{pend_ids} = []; 1 };
	return if $end eq 'BEGIN';		# WARNING 25001, nothing changes
	$g->end_tx($g->{tx} == 1 && ($end eq 'COMMIT' || $end eq 'END')) if $g->{tx};
}

sub q_set
{
	my ($g) = @_;
	my $r = $g->{r};
	my $k = _rand($r, 10);
	if ($k < 5) {
		my $s = $TRACKED_SETS[ _rand($r, scalar @TRACKED_SETS) ];
		$g->simple("SET $s->[0] = " . $s->[1]->($g), 0);
	} elsif ($k < 7) {
		my $s = $TRACKED_SETS[ _rand($r, scalar @TRACKED_SETS) ];
		$g->simple("RESET $s->[0]", 0);
	} else {
		# SET LOCAL: outside a transaction a WARNING and no effect.
		$g->simple('SET LOCAL ' . _pick($r, @LOCAL_SETS), 0);
	}
	$g->simple($g->_read_sql, 0) if _chance($r, 40);
}

sub q_cursor
{
	my ($g) = @_;
	my $r = $g->{r};
	if ($g->{tx} == 0) {
		$g->simple('BEGIN', 0);
		$g->{tx} = 1;
		$g->{pend_ids} = [];
		$g->{named} = [];
	}
	my $c = 'cur' . _rand($r, 1000);
	my $src = _chance($r, 50) ? 'SELECT id, v FROM %T ORDER BY id'
	    : 'SELECT g FROM generate_series(1, ' . (1 + _rand($r, 50)) . ') g';
	my $scroll = _chance($r, 30) ? ' SCROLL' : '';
	my @q = ("DECLARE $c$scroll CURSOR FOR $src");
	for (1 .. 1 + _rand($r, 3)) {
		push @q, _pick($r, 'FETCH 3 FROM ' . $c, "FETCH NEXT FROM $c", "MOVE 2 IN $c",
			"FETCH ALL FROM $c", $scroll ? "FETCH PRIOR FROM $c" : "FETCH 1 FROM $c");
	}
	push @q, "CLOSE $c" if _chance($r, 50);
	if (_chance($r, 40)) {
		$g->simple(join('; ', @q), 0);
	} else {
		for my $q (@q) {
			$g->simple($q, 0);
			$g->maybe_wait;
		}
	}
	if (_chance($r, 50)) {
		my $end = _pick($r, 'COMMIT', 'ROLLBACK');
		$g->simple($end, 0);
		$g->end_tx($end eq 'COMMIT' && $g->{tx} == 1);
	}
}

# COPY data rows for fresh ids; returns (msgs, ids, ok).
sub copy_rows
{
	my ($g) = @_;
	my $r = $g->{r};
	my @ids = map { $g->_next_id } 1 .. _rand($r, 5);
	my $wide = _chance($r, 10) ? 'w' x (1000 + _rand($r, 60000)) : '';
	my @msgs = map { [ 'd', "$_\tcopy$_\\tx$wide\t" . ($_ % 5) . "\n" ] } @ids;
	if (_chance($r, 30) && @msgs > 1) {
		# rows split across CopyData messages at random byte boundaries
		my $all = join('', map { $_->[1] } @msgs);
		@msgs = ();
		while (length $all) {
			my $n = 1 + _rand($r, length $all);
			push @msgs, [ 'd', substr($all, 0, $n, '') ];
		}
	}
	my $end = _rand($r, 10);
	my $ok = 1;
	if ($end == 0) {
		push @msgs, [ 'f', "client gave up\0" ];
		$ok = 0;
	} elsif ($end == 1) {
		push @msgs, [ 'd', "notanint\tbad\t1\n" ], [ 'c', '' ];
		$ok = 0;
	} else {
		push @msgs, [ 'c', '' ];
	}
	return (\@msgs, \@ids, $ok);
}

# After the data of a COPY FROM: where its ids go.
sub copy_done
{
	my ($g, $ids, $ok) = @_;
	if (!$ok || $g->{tx} == 2) {
		push @{ $g->{invisible} }, @$ids;
		$g->failed_here(0) if !$ok;
	} elsif ($g->{tx} == 1 || $g->{ext_open}) {
		push @{ $g->{pend_ids} }, @$ids;
	}
}

sub q_copy_in
{
	my ($g) = @_;
	my $r = $g->{r};
	$g->need_simple;
	my ($data, $ids, $ok) = $g->copy_rows;
	my $sql = 'COPY %T (id, v, n) FROM STDIN';
	if ($g->{tx} != 2 && _chance($r, 25)) {
		# data pipelined right behind the Query, without waiting for CopyInResponse
		$g->add("Q $sql + data (pipelined)", _msg_query($sql), @$data);
		$g->{answerable} = 1;
		$g->copy_done($ids, $ok);
		return;
	}
	$g->add("Q $sql", _msg_query($sql));
	$g->flush_send;
	push @{ $g->{steps} }, { op => 'wait_copy' };
	$g->note('wait_copy');
	if ($g->{tx} == 2) {		# fails: no CopyInResponse, no data sent
		push @{ $g->{invisible} }, @$ids;
		$g->{unread} = 0;
		return;
	}
	return $g->leave_mid_copy($data, $ids) if !$g->{leaving} && _chance($r, 6);
	push @{ $g->{steps} }, { op => 'copy_data', msgs => $data };
	$g->note('  copy data: ' . join('', map { $_->[0] } @$data));
	$g->{answerable} = 1;
	$g->{unread} = 1;
	$g->copy_done($ids, $ok);
}

sub q_copy_out
{
	my ($g) = @_;
	my $sql = _pick($g->{r}, 'COPY %T (id, v, n) TO STDOUT',
		'COPY (SELECT g, g * 2 FROM generate_series(1, ' . (1 + _rand($g->{r}, 30)) . ') g) TO STDOUT',
		'COPY (SELECT id, v FROM %T ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)');
	$g->simple($sql, 0);
}

# One extended statement (Parse/Bind/Describe/Execute/Close) into the open batch.
sub e_stmt
{
	my ($g, %o) = @_;
	my $r = $g->{r};
	my $k = $o{kind} // _rand($r, 10);
	my ($sql, @types, @params, @ids);
	my $fails = 0;
	my $fail_at_parse = 0;
	if ($k < 4) {
		$sql = $g->_read_sql;
	} elsif ($k < 7) {
		my $id = $g->_next_id;
		@ids = ($id);
		$sql = 'INSERT INTO %T (id, v, n) VALUES ($1, $2, $3)';
		@types = (23, 25, 23);
		@params = ($id, "r$g->{round}c$g->{client}e$id", $id % 3);
	} elsif ($k < 9) {
		$sql = $g->_error_sql;
		$fails = 1;
		$fail_at_parse = $sql =~ /SELEC 1|no_such/;
	} else {
		$sql = _pick($r, 'SELECT $1::int + 1, $2::text', 'SELECT $1::int * 2, upper($2::text)');
		@params = (_rand($r, 1000), 'p' . _rand($r, 100));
	}
	# Named statement: only while the same server is surely held.
	my $stmt = '';
	if (_chance($r, 35)) {
		$g->{nstmt}++;
		$stmt = "s_$g->{client}_$g->{round}_$g->{nstmt}";
	}
	my @m = (_msg_parse($stmt, $sql, @types));
	my @d = ("P($stmt) $sql");
	if (_chance($r, 25)) { push @m, _msg_describe('S', $stmt); push @d, 'D S' }
	my $portal = _chance($r, 25) ? 'por' . _rand($r, 100) : '';
	my $bin = ($k < 4 && _chance($r, 10)) ? 1 : 0;
	push @m, _msg_bind($portal, $stmt, \@params, $bin);
	push @d, "B($portal)" . ($bin ? ' binary' : '');
	if (_chance($r, 30)) { push @m, _msg_describe('P', $portal); push @d, 'D P' }
	my $keep = 0;
	if ($k < 4 && $g->{tx} == 1 && !$g->{ext_failed} && _chance($r, 30)) {
		# a named portal suspended after 1 row, resumed by a later batch of the
		# same transaction (portals live until the transaction ends)
		$portal = 'keep' . ++$g->{nportal};
		$m[-1] = _msg_bind($portal, $stmt, \@params, $bin);
		$d[-1] = "B($portal)";
		push @m, _msg_execute($portal, 1);
		push @d, 'E max 1 (kept)';
		$keep = 1;
	} elsif ($k < 4 && _chance($r, 25)) {
		push @m, _msg_execute($portal, 2), _msg_execute($portal, 0);
		push @d, 'E max 2', 'E';
	} else {
		push @m, _msg_execute($portal, 0);
		push @d, 'E';
	}
	if ($portal ne '' && !$keep && _chance($r, 50)) { push @m, _msg_close('P', $portal); push @d, 'C P' }
	if ($stmt ne '' && !$fails && _chance($r, 40) && !@ids) {
		# the named statement again, then closed
		push @m, _msg_bind('', $stmt, \@params, 0), _msg_execute('', 0);
		push @d, "B() $stmt", 'E';
	}
	if ($stmt ne '' && _chance($r, 60)) { push @m, _msg_close('S', $stmt); push @d, 'C S' }
	$g->{ext_open} = 1;
	$g->add(join(' ', @d), @m);
	push @{ $g->{portals} }, $portal if $keep;
	if ($g->{tx} == 2 || $g->{ext_failed} || $fails) {
		push @{ $g->{invisible} }, @ids;
		$g->failed_here(1);
	} else {
		push @{ $g->{pend_ids} }, @ids;
	}
}

# Transaction control through the extended protocol.
sub e_txctl
{
	my ($g, $cmd) = @_;
	$g->{ext_open} = 1;
	$g->add("P/B/E $cmd", _msg_parse('', $cmd), _msg_bind('', '', [], 0), _msg_execute('', 0));
	return if $g->{ext_failed};	# skipped until Sync
	if ($cmd eq 'BEGIN') {
		if ($g->{tx} == 0) {
			$g->{tx} = 1;	# the implicit transaction becomes the explicit one
		}
	} elsif ($g->{tx}) {
		$g->end_tx($g->{tx} == 1 && $cmd eq 'COMMIT');
		$g->{named} = [];
	}
}

sub e_batch
{
	my ($g) = @_;
	my $r = $g->{r};
	if (!$g->{ext_open} && $g->{tx} == 0 && _chance($r, 15)) {
		$g->e_txctl('BEGIN');
	}
	for (1 .. 1 + _rand($r, 3)) {
		$g->e_stmt;
	}
	if ($g->{tx} && _chance($r, 15)) {
		$g->e_txctl(_pick($r, 'COMMIT', 'ROLLBACK'));
	}
	my $t = _rand($r, 10);
	if ($t < 5) {
		$g->sync;
	} elsif ($t < 8) {
		$g->add('Flush', [ 'H', '' ]);
	}
	# else: no Sync, no Flush: the next item goes into the same batch
}

# Execute more rows of a portal suspended earlier in this transaction.
sub e_portal_resume
{
	my ($g) = @_;
	my $r = $g->{r};
	my $p = $g->{portals}[ _rand($r, scalar @{ $g->{portals} }) ];
	my @m = (_msg_execute($p, 1 + _rand($r, 3)));
	my $d = "E($p) more rows";
	if (_chance($r, 40)) {
		push @m, _msg_close('P', $p);
		$d .= ", C P($p)";
		$g->{portals} = [ grep { $_ ne $p } @{ $g->{portals} } ];
	}
	$g->{ext_open} = 1;
	$g->add($d, @m);
	$g->failed_here(1) if $g->{ext_failed};
	_chance($r, 70) ? $g->sync : $g->add('Flush', [ 'H', '' ]);
}

sub e_pipeline_syncs
{
	my ($g) = @_;
	for (1 .. 2 + _rand($g->{r}, 3)) {
		$g->e_stmt;
		$g->sync;
	}
}

sub e_copy_in
{
	my ($g) = @_;
	my $r = $g->{r};
	# starts a batch of its own, after everything before it was answered
	$g->sync if $g->{ext_open};
	return $g->q_read if $g->{tx} == 2;
	$g->wait;
	my ($data, $ids, $ok) = $g->copy_rows;
	my @m = (_msg_parse('', 'COPY %T (id, v, n) FROM STDIN'), _msg_bind('', '', [], 0));
	push @m, _msg_describe('P', '') if _chance($r, 50);
	push @m, _msg_execute('', 0);
	if (_chance($r, 20)) {
		# the data right behind Execute, without waiting for CopyInResponse
		$g->{ext_open} = 1;
		$g->add('P/B/E COPY FROM STDIN + data + Sync (pipelined)', @m, @$data, [ 'S', '' ]);
		$g->copy_done($ids, $ok);
		$g->failed_here(1) if !$ok;
		$g->{ext_open} = 0;
		if ($g->{tx} == 0) {
			$g->{ext_failed} ? $g->rollback_pending : $g->commit_pending;
		}
		$g->{ext_failed} = 0;
		return;
	}
	# libpq sends Sync right behind Execute (ignored during COPY); others Flush
	my $after = _pick($r, 'S', 'H', 'SS');
	push @m, map { [ $_, '' ] } split //, $after;
	$g->add("P/B/E COPY FROM STDIN + $after", @m);
	$g->flush_send;
	push @{ $g->{steps} }, { op => 'wait_copy' };
	$g->note('wait_copy');
	$g->{ext_open} = 1;
	return $g->leave_mid_copy($data, $ids) if !$g->{leaving} && _chance($r, 6);
	push @$data, [ 'S', '' ];
	push @{ $g->{steps} }, { op => 'copy_data', msgs => $data };
	$g->note('  copy data: ' . join('', map { $_->[0] } @$data));
	$g->{answerable} = 1;
	$g->{unread} = 1;
	$g->copy_done($ids, $ok);
	$g->{ext_open} = 1;
	$g->failed_here(1) if !$ok;
	$g->{ext_open} = 0;		# the Sync after the data
	if ($g->{tx} == 0) {
		$g->{ext_failed} ? $g->rollback_pending : $g->commit_pending;
	}
	$g->{ext_failed} = 0;
}

sub e_copy_out
{
	my ($g) = @_;
	my $sql = _pick($g->{r}, 'COPY %T (id, v) TO STDOUT',
		'COPY (SELECT g FROM generate_series(1, ' . (1 + _rand($g->{r}, 20)) . ') g) TO STDOUT');
	$g->{ext_open} = 1;
	$g->add("P/B/E $sql", _msg_parse('', $sql), _msg_bind('', '', [], 0), _msg_execute('', 0));
	$g->sync if _chance($g->{r}, 70);
}

# How the client leaves.
sub ending
{
	my ($g) = @_;
	my $r = $g->{r};
	$g->{leaving} = 1;
	if ($g->{mid_copy}) {
		# left inside COPY FROM STDIN: a pending copy is rolled back
		$g->{kinds}{end_mid_copy}++;
		$g->rollback_pending;
		return $g->leave(_pick($r, 'X', 'fin', 'rst'));
	}
	my $k = _rand($r, 100);
	$g->sync if $g->{ext_open} && _chance($r, 50);
	# Read everything first (a Flush makes an open batch answer), so that
	# nothing whose outcome depends on timing (a Query that commits) is
	# still in flight when the client leaves.
	$g->add('Flush', [ 'H', '' ]) unless $g->{answerable};
	$g->wait;
	if ($k < 45) {
		# everything answered, then Terminate (maybe inside a transaction)
		$g->{kinds}{end_after_all_answered}++;
		$g->rollback_pending;
		return $g->leave(_pick($r, 'X', 'X', 'fin', 'rst'));
	}
	# Leave early, with work that cannot commit still in flight.
	my $u = _rand($r, 6);
	$g->{kinds}{"end_early_$u"}++;
	if ($u == 0) {
		# uncommitted extended work, maybe flushed and read
		$g->e_stmt(kind => 5);
		if (_chance($r, 50)) {
			$g->add('Flush', [ 'H', '' ]);
			$g->wait;
		}
	} elsif ($u == 1) {
		# unanswered reads, maybe a large result the server is still sending
		$g->sync if $g->{ext_open};
		my $n = _chance($r, 50) ? 20000 : 10;
		$g->add('Q big read', _msg_query("SELECT g, repeat('y', 100) FROM generate_series(1, $n) g"));
		if (_chance($r, 50)) {
			$g->add('P/B/E read + Sync', _msg_parse('', $g->_read_sql), _msg_bind('', '', [], 0),
				_msg_execute('', 0), [ 'S', '' ]);
		}
	} elsif ($u == 2 && !$g->{ext_open} && $g->{tx} == 0) {
		# a transaction begun and written to, not answered
		my ($sql, @ids) = $g->_insert_sql;
		$g->add("Q BEGIN; $sql (unanswered)", _msg_query("BEGIN; $sql"));
		push @{ $g->{invisible} }, @ids;
	} elsif ($u == 3 && $g->{tx} == 1 && !$g->{ext_open}) {
		my ($sql, @ids) = $g->_insert_sql;
		$g->add("Q $sql in tx (unanswered)", _msg_query($sql));
		push @{ $g->{invisible} }, @ids;
	}
	$g->flush_send;
	$g->rollback_pending;
	if (_chance($r, 30)) {
		# a partial message: the rest never comes
		my $pad = '/*' . ('p' x (500 + _rand($r, 2500))) . '*/';
		my $m = _chance($r, 50) ? _msg_query("SELECT 1 $pad")
		    : _msg_parse('', "SELECT 2 $pad");
		push @{ $g->{steps} }, { op => 'partial', msg => $m, frac => (1 + _rand($r, 99)) / 100 };
		$g->note("partial $m->[0] message");
		$g->{kinds}{end_partial}++;
		return $g->leave(_pick($r, 'fin', 'rst'));
	}
	return $g->leave(_pick($r, 'X', 'fin', 'rst'));
}

sub leave
{
	my ($g, $how) = @_;
	$g->flush_send;
	push @{ $g->{steps} }, { op => 'leave', how => $how };
	$g->note("leave $how");
}

package PgSlab::Test::Differential;

=item describe_sequence($seq)

The sequence as text, one step a line.

=cut

sub describe_sequence
{
	my ($seq) = @_;
	return join("\n", "sequence seed=$seq->{seed} client=$seq->{client} round=$seq->{round}",
		@{ $seq->{desc} }, 'invisible ids: ' . join(',', @{ $seq->{invisible} }));
}

# ------------------------------------------------------------------------------------------
# Runner

sub _printable
{
	my ($s) = @_;
	$s =~ s/([^\x20-\x7e])/sprintf('\\x%02x', ord $1)/ge;
	return $s;
}

=item normalize_message($type, $body)

One backend message as a comparable string (see L</Normalization>).

=cut

sub normalize_message
{
	my ($t, $b) = @_;
	if ($t eq 'T') {
		my ($n, $rest) = unpack('n a*', $b);
		my @c;
		for (1 .. $n) {
			my ($name, $tab, $att, $oid, $len, $mod, $fmt);
			($name, $rest) = unpack('Z* a*', $rest);
			($tab, $att, $oid, $len, $mod, $fmt, $rest) = unpack('N n N n l> n a*', $rest);
			push @c, "$name:$oid:$mod:$fmt";
		}
		return 'T ' . _printable(join(',', @c));
	}
	if ($t eq 'D') {
		my ($n, $rest) = unpack('n a*', $b);
		my @v;
		for (1 .. $n) {
			my $l = unpack('l>', $rest);
			$rest = substr($rest, 4);
			if ($l < 0) { push @v, '\N'; next }
			push @v, substr($rest, 0, $l);
			$rest = substr($rest, $l);
		}
		return 'D ' . _printable(join('|', @v));
	}
	if ($t eq 'E' || $t eq 'N') {
		my $f = parse_fields($b);
		return "$t " . ($f->{V} // $f->{S} // '?') . ' ' . ($f->{C} // '?');
	}
	return 'C ' . _printable(unpack('Z*', $b)) if $t eq 'C';
	return 'S ' . _printable(join('=', unpack('Z* Z*', $b))) if $t eq 'S';
	return "Z $b" if $t eq 'Z';
	return "$t " . _printable($b) if $t eq 'd' || $t eq 't' || $t eq 'G' || $t eq 'H' || $t eq 'W';
	return "$t " . length($b) if length $b;
	return $t;
}

# What the backend owes for a frontend message, as a token.
sub _token
{
	my ($type, $body) = @_;
	return 'Q' if $type eq 'Q';
	return $type if $type =~ /^[PBECS]$/;
	return 'D' if $type eq 'D';
	# CopyDone/CopyFail written before CopyInResponse was read: a marker,
	# owed nothing, that tells which Syncs the COPY will swallow
	return 'cd' if $type eq 'c' || $type eq 'f';
	return ();
}

# The backend message <t> answers: pop what it completes.
sub _consume
{
	my ($tok, $t, $skip) = @_;
	my $head = $tok->[0] // '';
	if ($t eq 'Z') {
		while (@$tok) {
			my $x = shift @$tok;
			last if $x eq 'S' || $x eq 'Q';
		}
		# copy data behind a COPY that failed: ignored by the backend
		shift @$tok while @$tok && $tok->[0] eq 'cd';
	} elsif ($t eq 'E') {
		return if $head eq 'Q';
		# extended protocol: everything up to the next Sync is skipped,
		# including what is sent later if no Sync is on its way
		shift @$tok while @$tok && $tok->[0] ne 'S' && $tok->[0] ne 'Q';
		$$skip = 1 unless @$tok;
	} elsif ($t eq '1') {
		shift @$tok if $head eq 'P';
	} elsif ($t eq '2') {
		shift @$tok if $head eq 'B';
	} elsif ($t eq '3') {
		shift @$tok if $head eq 'C';
	} elsif ($t eq 'T' || $t eq 'n') {
		shift @$tok if $head eq 'D';
	} elsif ($t eq 'C' || $t eq 's' || $t eq 'I') {
		shift @$tok if $head eq 'E';
	} elsif ($t eq 'G') {
		return unless @$tok;
		my $e = shift @$tok;
		my @rest;
		my $in_copy = 1;
		for my $x (@$tok) {
			if ($in_copy && $x eq 'cd') { $in_copy = 0; next }
			# Syncs sent before the copy data ends are ignored during
			# COPY FROM STDIN through the extended protocol
			next if $in_copy && $x eq 'S' && $e eq 'E';
			push @rest, $x;
		}
		@$tok = ($e, @rest);
	}
}

# One backend message from <$s>, through the buffer <$$buf> (big reads: a
# result of thousands of rows costs a few system calls, not two a row).
sub _read_buffered
{
	my ($s, $buf, $deadline) = @_;
	my $sel;
	while (1) {
		if (length $$buf >= 5) {
			my ($type, $len) = unpack('a1 N', $$buf);
			return ('BADLEN', $len) if $len < 4 || $len > 64 * 1024 * 1024;
			if (length $$buf >= $len + 1) {
				my $body = substr($$buf, 5, $len - 4);
				substr($$buf, 0, $len + 1, '');
				return ($type, $body);
			}
		}
		$sel //= IO::Select->new($s);
		my $left = $deadline - time;
		return ('TIMEOUT') if $left <= 0 || !$sel->can_read($left);
		my $n = sysread($s, $$buf, 262144, length $$buf);
		return ('EOF') unless $n;
	}
}

=item run_sequence($seq, host => H, port => P, user => U, password => PW, table => T, timeout => 15)

Runs the sequence on a new connection and returns a hashref: C<stream>
(arrayref of normalized messages, in the order read, with C<!TIMEOUT>,
C<!EOF>, C<!SENDFAIL> or C<!LOGIN ...> where the run stopped early) and
C<stopped> (the step index where it stopped, or undef).

=cut

sub run_sequence
{
	my ($seq, %o) = @_;
	my $timeout = $o{timeout} // 15;
	my @out;
	my %res = (stream => \@out, stopped => undef, texts => {});
	my $s = eval { raw_connect($o{host}, $o{port}) };
	if (!$s) {
		push @out, '!CONNECT';
		return \%res;
	}
	my $lo = scram_login($s, $o{user}, $o{password});
	if (!$lo->{ready}) {
		push @out, '!LOGIN ' . describe_outcome($lo);
		$res{stopped} = -1;
		close $s;
		return \%res;
	}
	my @tok;
	my $rbuf = '';
	my $skip = 0;
	my $copy_in = 0;
	my $i = 0;
	my $stop = sub {
		my ($why) = @_;
		push @out, "!$why";
		$res{stopped} = $i;
		raw_reset($s);
		return \%res;
	};
	for my $st (@{ $seq->{steps} }) {
		my $op = $st->{op};
		if ($op eq 'send' || $op eq 'copy_data') {
			next if $op eq 'copy_data' && !$copy_in;
			my $bytes = '';
			for my $m (@{ $st->{msgs} }) {
				my $body = $m->[1];
				$body =~ s/%T/$o{table}/g;
				$bytes .= frontend_message($m->[0], $body);
				if ($skip) {
					# the backend discards messages until Sync
					next unless $m->[0] eq 'S';
					$skip = 0;
				}
				push @tok, _token($m->[0], $body);
			}
			if ($st->{split}) {
				my $off = 0;
				for my $f (sort { $a <=> $b } @{ $st->{split} }) {
					my $to = int(length($bytes) * $f);
					next if $to <= $off;
					return $stop->('SENDFAIL') unless raw_send($s, substr($bytes, $off, $to - $off));
					$off = $to;
					sleep(0.003);
				}
				$bytes = substr($bytes, $off);
			}
			return $stop->('SENDFAIL') unless raw_send($s, $bytes);
			$copy_in = 0;
			# copy data sent after CopyInResponse was read owes no marker
			@tok = grep { $_ ne 'cd' } @tok if $op eq 'copy_data';
		} elsif ($op eq 'wait' || $op eq 'wait_copy') {
			sleep($st->{pause}) if $st->{pause};
			my $deadline = time + $timeout;
			$copy_in = 0;
			while (@tok) {
				my ($t, $b) = _read_buffered($s, \$rbuf, $deadline);
				return $stop->($t) if $t eq 'EOF' || $t eq 'TIMEOUT' || $t eq 'BADLEN';
				push @out, normalize_message($t, $b);
				# an error's text, for a mismatch report only (never compared)
				$res{texts}{$#out} = parse_fields($b)->{M} if $t eq 'E';
				_consume(\@tok, $t, \$skip);
				if ($t eq 'G' && $op eq 'wait_copy') {
					$copy_in = 1;
					last;
				}
			}
		} elsif ($op eq 'partial') {
			my $m = $st->{msg};
			my $bytes = frontend_message($m->[0], $m->[1]);
			my $n = int(length($bytes) * $st->{frac});
			$n = 1 if $n < 1;
			raw_send($s, substr($bytes, 0, $n));
			sleep(0.01);
		} elsif ($op eq 'leave') {
			if ($st->{how} eq 'X') {
				raw_send($s, frontend_message('X', ''));
				close $s;
			} elsif ($st->{how} eq 'fin') {
				close $s;
			} else {
				raw_reset($s);
			}
			$s = undef;
		}
		$i++;
	}
	close $s if $s;
	return \%res;
}

=item compare_streams($a, $b)

Index of the first difference between two streams (arrayrefs), or -1.

=back

=cut

sub compare_streams
{
	my ($x, $y) = @_;
	my $n = @$x > @$y ? scalar @$x : scalar @$y;
	for my $i (0 .. $n - 1) {
		return $i if !defined $x->[$i] || !defined $y->[$i] || $x->[$i] ne $y->[$i];
	}
	return -1;
}

# ------------------------------------------------------------------------------------------
# The driver

=pod

=head1 METHODS

=over

=item PgSlab::Test::Differential->new(%opts)

C<cluster> (a started L<PgSlab::Test::Cluster>), C<proxies> (arrayref of
started L<PgSlab::Test::Proxy> in transaction mode; rounds alternate
between them), C<user>/C<password> (a login role present in the proxies'
userlists), C<clients> (per round, default 12), C<seed>, C<diag> (a code
ref printing a diagnostic line), C<timeout> (seconds per wait, default 15),
C<max_diag> (mismatches described in full, default 5).

=cut

sub new
{
	my ($class, %o) = @_;
	croak 'need cluster and proxies' unless $o{cluster} && $o{proxies};
	my $self = bless {
		cluster => $o{cluster}, proxies => $o{proxies},
		user => $o{user} // 'dif', password => $o{password} // 'dif_pw',
		clients => $o{clients} // 12, seed => $o{seed} // time,
		diag => $o{diag} // sub { print STDERR "# $_[0]\n" },
		timeout => $o{timeout} // 15, max_diag => $o{max_diag} // 5,
		sequences => 0, mismatches => 0, invariant_failures => 0, rounds => 0,
		kinds => {}, baseline => [], problems => [],
	}, $class;
	$self->{tmp} = PgSlab::Test::Cluster::make_temp_dir('pgslab_dif');
	return $self;
}

sub _diag { my ($self, $m) = @_; $self->{diag}->($_) for split /\n/, $m }

sub _problem
{
	my ($self, $kind, $msg) = @_;
	push @{ $self->{problems} }, "$kind: $msg";
	$self->_diag("$kind: $msg") if @{ $self->{problems} } <= 3 * $self->{max_diag};
}

sub _dbh
{
	my ($self) = @_;
	$self->{dbh} //= $self->{cluster}->connect_dbi('postgres',
		attrs => { AutoInactiveDestroy => 1 });
	return $self->{dbh};
}

sub _console
{
	my ($self, $i) = @_;
	$self->{console}[$i] //= $self->{proxies}[$i]->connect_dbi('pgslab',
		attrs => { pg_server_prepare => 0, AutoInactiveDestroy => 1 });
	return $self->{console}[$i];
}

sub _show
{
	my ($self, $i, $cmd) = @_;
	my $sth = $self->_console($i)->prepare($cmd);
	$sth->execute;
	return @{ $sth->fetchall_arrayref({}) };
}

=item PgSlab::Test::Differential->start_servers(%opts)

Starts what a run needs and returns C<($cluster, \@proxies)>: a cluster
with the login role C<dif> (password C<dif_pw>), and two pgslab instances
(binary from C<$PGSLAB>) in transaction mode in front of it: C<default_pool_size = 2>
without a reset between clients, and C<default_pool_size = 3> with
C<server_reset_query_always = 1> (DISCARD ALL on every release).  C<name>
is a label prefix (default C<dif>).

=cut

sub start_servers
{
	my ($class, %o) = @_;
	my $name = $o{name} // 'dif';
	require PgSlab::Test::Cluster;
	require PgSlab::Test::Proxy;
	my $node = PgSlab::Test::Cluster->new(name => "c$name");
	$node->start;
	$node->create_user('dif', 'dif_pw');
	my @proxies;
	for my $p ([ "p${name}a", 2, 0 ], [ "p${name}b", 3, 1 ]) {
		my $proxy = PgSlab::Test::Proxy->new(
			cluster  => $node,
			name     => $p->[0],
			settings => {
				pool_mode                 => 'transaction',
				default_pool_size         => $p->[1],
				server_reset_query_always => $p->[2],
				max_prepared_statements   => $p->[2] ? 4 : 200,
				max_client_conn           => 200,
				query_wait_timeout        => 60,
			},
			userlist => PgSlab::Test::Proxy::userlist_from_cluster($node, 'dif'));
		$proxy->start;
		push @proxies, $proxy;
	}
	return ($node, \@proxies);
}

=item sanitizer_report($proxy)

The first lines of an AddressSanitizer/UBSan/LeakSanitizer report in the
proxy's log and output, or undef.

=cut

sub sanitizer_report
{
	my ($class, $proxy) = @_;
	my $log = $proxy->log_content;
	return undef unless $log =~ /(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: \w+Sanitizer)/;
	my $at = index($log, $1);
	return substr($log, $at > 200 ? $at - 200 : 0, 3000);
}

=item setup

Creates the tables C<dt_I> and C<pt_I> for every client index, owned by
the test user.

=cut

sub setup
{
	my ($self) = @_;
	my $dbh = $self->_dbh;
	for my $c (0 .. $self->{clients} - 1) {
		for my $t ("dt_$c", "pt_$c") {
			$dbh->do("CREATE TABLE $t (id int PRIMARY KEY, v text, n int CHECK (n >= 0))");
			$dbh->do("ALTER TABLE $t OWNER TO $self->{user}");
		}
	}
	return 1;
}

# Fork one process per client; each runs its sequence and stores the result.
sub _run_phase
{
	my ($self, $round, $seqs, $host, $port, $prefix) = @_;
	my %kids;
	for my $c (0 .. $#$seqs) {
		my $file = "$self->{tmp}/r${round}_${prefix}_$c";
		unlink $file;
		my $pid = fork;
		croak "fork: $!" unless defined $pid;
		if ($pid == 0) {
			my $ok = eval {
				local $SIG{ALRM} = sub { die "alarm\n" };
				alarm($self->{timeout} * 4);
				my $res = run_sequence($seqs->[$c], host => $host, port => $port,
					user => $self->{user}, password => $self->{password},
					table => "${prefix}_$c", timeout => $self->{timeout});
				alarm(0);
				nstore($res, $file);
				1;
			};
			nstore({ stream => [ '!DIED ' . ($@ // '') ], stopped => -2 }, $file) unless $ok;
			POSIX::_exit(0);
		}
		$kids{$pid} = $c;
	}
	my $deadline = time + $self->{timeout} * 4 + 10;
	while (%kids) {
		my $pid = waitpid(-1, POSIX::WNOHANG());
		if ($pid > 0) {
			delete $kids{$pid};
			next;
		}
		if (time > $deadline) {
			kill 'KILL', $_ for keys %kids;
			waitpid($_, 0) for keys %kids;
			last;
		}
		sleep(0.005);
	}
	my @res;
	for my $c (0 .. $#$seqs) {
		my $file = "$self->{tmp}/r${round}_${prefix}_$c";
		push @res, (-f $file ? retrieve($file) : { stream => ['!NORESULT'] });
		unlink $file;
	}
	return \@res;
}

sub _fmt_stream
{
	my ($s, $from, $to, $texts) = @_;
	$from = 0 if $from < 0;
	$to = $#$s if $to > $#$s;
	return join("\n", map {
		sprintf('    %4d %s', $_, substr($s->[$_], 0, 200))
		    . (defined $texts->{$_} ? ' (' . substr($texts->{$_}, 0, 200) . ')' : '')
	} $from .. $to);
}

=item run_round($round)

One round: generate, run directly, run through the proxy of this round,
compare and check the invariants.  Returns the number of new problems.

=cut

sub run_round
{
	my ($self, $round) = @_;
	my $pi = $round % @{ $self->{proxies} };
	my $proxy = $self->{proxies}[$pi];
	my $dbh = $self->_dbh;
	$dbh->do('TRUNCATE ' . join(', ', map { ("dt_$_", "pt_$_") } 0 .. $self->{clients} - 1));
	my @seqs = map { generate_sequence(seed => $self->{seed}, client => $_, round => $round) }
	    0 .. $self->{clients} - 1;
	for my $q (@seqs) {
		$self->{kinds}{$_} += $q->{kinds}{$_} for keys %{ $q->{kinds} };
	}
	my $before = @{ $self->{problems} };
	my $t0 = time;
	if (!$self->{warm}{$pi}++) {
		# one login in this process first: the children inherit the SCRAM
		# key derivation (PgSlab::Test::Wire remembers it)
		for my $ep ([ $self->{cluster}->host, $self->{cluster}->port ], [ $proxy->host, $proxy->port ]) {
			my $s = raw_connect(@$ep);
			scram_login($s, $self->{user}, $self->{password});
			raw_send($s, frontend_message('X', ''));
			close $s;
		}
	}
	my $direct = $self->_run_phase($round, \@seqs, $self->{cluster}->host, $self->{cluster}->port, 'dt');
	my $proxied = $self->_run_phase($round, \@seqs, $proxy->host, $proxy->port, 'pt');
	my $t1 = time;
	$self->{sequences} += @seqs;
	for my $c (0 .. $#seqs) {
		my ($d, $p) = ($direct->[$c]{stream}, $proxied->[$c]{stream});
		if (grep { /^!(?:LOGIN|CONNECT|DIED|NORESULT|TIMEOUT|BADLEN)/ } @$d) {
			$self->_problem('direct run failed', "seed $self->{seed} round $round client $c: "
				. join(' ', grep { /^!/ } @$d) . "\n" . describe_sequence($seqs[$c])
				. "\n  direct:\n" . _fmt_stream($d, @$d - 20, scalar @$d));
			next;
		}
		my $i = compare_streams($d, $p);
		next if $i < 0;
		$self->{mismatches}++;
		my $msg = "seed $self->{seed} round $round client $c (proxy $pi): "
		    . "streams differ at message $i\n";
		if ($self->{mismatches} <= $self->{max_diag}) {
			$msg .= describe_sequence($seqs[$c]) . "\n  direct:\n"
			    . _fmt_stream($d, $i - 8, $i + 8, $direct->[$c]{texts})
			    . "\n  proxied:\n" . _fmt_stream($p, $i - 8, $i + 8, $proxied->[$c]{texts});
		}
		$self->_problem('MISMATCH', $msg);
	}
	$self->_check_idle($pi, $round);
	$self->_check_tables($round, \@seqs);
	$self->_check_slabs($pi, $round);
	$self->{time_run} += $t1 - $t0;
	$self->{time_check} += time - $t1;
	unless ($proxy->is_running) {
		$self->_problem('pgslab died', "round $round");
	}
	$self->{rounds}++;
	my $new = @{ $self->{problems} } - $before;
	$self->{invariant_failures} += $new - grep { /^MISMATCH/ } @{ $self->{problems} }[ $before .. $#{ $self->{problems} } ];
	return $new;
}

# The pool of the test user returns to idle: no client, no linked or active server.
sub _check_idle
{
	my ($self, $pi, $round) = @_;
	my $u = $self->{user};
	my $deadline = time + 10;
	my $why;
	while (1) {
		$why = undef;
		my @cl = grep { $_->{user} eq $u } $self->_show($pi, 'SHOW CLIENTS');
		my @sv = grep { $_->{user} eq $u } $self->_show($pi, 'SHOW SERVERS');
		my @po = grep { $_->{user} eq $u } $self->_show($pi, 'SHOW POOLS');
		if (@cl) {
			$why = scalar(@cl) . ' client(s) of a finished round still listed: '
			    . join(', ', map { "$_->{state}" } @cl);
		} elsif (my @l = grep { $_->{link} ne '' || $_->{state} ne 'idle' } @sv) {
			$why = 'servers not idle or still linked: '
			    . join(', ', map { "$_->{state}/link=$_->{link}/pid=$_->{remote_pid}" } @l);
		} elsif (my @p = grep { $_->{cl_active} || $_->{cl_waiting} || $_->{sv_active}
			    || $_->{sv_login} || $_->{sv_used} } @po) {
			$why = 'pool counters not back to zero: ' . join(', ', map {
				my $r = $_;
				join(' ', map { "$_=$r->{$_}" } qw(cl_active cl_waiting sv_active sv_idle sv_used sv_login))
			} @p);
		}
		last if !$why || time > $deadline;
		sleep(0.05);
	}
	$self->_problem('NOT IDLE', "seed $self->{seed} round $round proxy $pi: $why") if $why;
}

# Both tables of each client hold the same rows; no rolled back / abandoned row is visible.
sub _check_tables
{
	my ($self, $round, $seqs) = @_;
	my $dbh = $self->_dbh;
	for my $c (0 .. $#$seqs) {
		my ($d, $p) = map {
			join(';', map { join('|', map { $_ // '\N' } @$_) }
			    @{ $dbh->selectall_arrayref("SELECT id, v, n FROM ${_}_$c ORDER BY id") })
		} qw(dt pt);
		if ($d ne $p) {
			$self->_problem('TABLES DIFFER', "seed $self->{seed} round $round client $c:\n"
				. "  direct:  $d\n  proxied: $p\n" . describe_sequence($seqs->[$c]));
		}
		my @inv = @{ $seqs->[$c]{invisible} };
		next unless @inv;
		my $list = join(',', @inv);
		for my $t ("dt_$c", "pt_$c") {
			my $seen = $dbh->selectcol_arrayref("SELECT id FROM $t WHERE id IN ($list) ORDER BY id");
			next unless @$seen;
			my $what = $t =~ /^dt/ ? 'GENERATOR MODEL (direct run)' : 'UNCOMMITTED ROW VISIBLE';
			$self->_problem($what, "seed $self->{seed} round $round client $c: ids "
				. join(',', @$seen) . " in $t should not be visible\n" . describe_sequence($seqs->[$c]));
		}
	}
}

# Slab caches: active objects stay at the baseline taken after warm-up.
sub _check_slabs
{
	my ($self, $pi, $round) = @_;
	my %now = map { $_->{name} => $_->{active_objs} } $self->_show($pi, 'SHOW SLABS');
	my $base = $self->{baseline}[$pi];
	# Prepared statements stay cached on backends (up to max_prepared_statements
	# each), so those caches are checked against their own bounds instead:
	# no client name or owed answer once the clients are gone, no statement
	# that neither a backend nor a name holds.
	my %prep = map { $_ => delete $now{$_} } grep { /^prep_/ } keys %now;
	my $servers = 0;
	$servers += $_->{sv_idle} + $_->{sv_used} + $_->{sv_active}
	    for grep { $_->{database} ne 'pgslab' && $_->{database} ne 'pgbouncer' }
	    $self->_show($pi, 'SHOW POOLS');
	my $maxp = $pi == 1 ? 4 : 200;
	my @bad;
	push @bad, "prep_client_name $prep{prep_client_name} with no client" if $prep{prep_client_name};
	push @bad, "prep_pending $prep{prep_pending} while idle" if $prep{prep_pending};
	push @bad, "prep_server_stmt $prep{prep_server_stmt} > $maxp x $servers servers"
	    if ($prep{prep_server_stmt} // 0) > $maxp * $servers;
	push @bad, "prep_stmt $prep{prep_stmt} > prep_server_stmt $prep{prep_server_stmt}"
	    if ($prep{prep_stmt} // 0) > ($prep{prep_server_stmt} // 0);
	$self->_problem('SLAB LEAK', "seed $self->{seed} round $round proxy $pi: " . join(', ', @bad))
	    if @bad;
	# warm-up: the first two rounds of each proxy set the baseline (maximum seen)
	if (($self->{seen_rounds}[$pi] // 0) < 2) {
		$self->{seen_rounds}[$pi]++;
		$self->{baseline}[$pi] //= {};
		for my $k (keys %now) {
			my $b = $self->{baseline}[$pi]{$k};
			$self->{baseline}[$pi]{$k} = $now{$k} if !defined $b || $now{$k} > $b;
		}
		return;
	}
	# The pool's servers may be closed and replaced (a client left with work
	# in flight), so per-server objects vary by up to the pool size; a leak
	# grows without bound and crosses the slack within a few rounds.
	# Log records are the async log's backlog: a starved writer thread (a
	# loaded machine) holds more of them for a while, up to log_queue_size
	# (default 4096) -- that bound, not the baseline, is their leak check.
	my $slack = $self->{slab_slack} // 8;
	my @grew = grep { $now{$_} > ($_ eq 'log-record' ? 4096 : ($base->{$_} // 0) + $slack) }
	    sort keys %now;
	$self->{slab_last}[$pi] = \%now;
	return unless @grew;
	$self->_problem('SLAB LEAK', "seed $self->{seed} round $round proxy $pi: "
		. join(', ', map { "$_ active $now{$_} > baseline " . ($base->{$_} // 0) } @grew));
	# do not report the same growth every round
	$base->{$_} = $now{$_} for @grew;
}

=item run(seconds => N, rounds => M)

Rounds until either bound is reached; returns C<summary>.

=cut

sub run
{
	my ($self, %o) = @_;
	my $end = time + ($o{seconds} // 60);
	my $max = $o{rounds} // 1e9;
	my $r = $o{first_round} // 0;
	while ($r < $max && time < $end) {
		$self->run_round($r++);
	}
	return $self->summary;
}

=item summary

C<< { sequences, mismatches, invariant_failures, rounds, seed, problems, kinds,
slabs } >>; C<slabs> has a line per proxy: active objects of each slab cache
as C<name=baseline/last>.

=back

=cut

sub summary
{
	my ($self) = @_;
	my @slabs;
	for my $pi (0 .. $#{ $self->{proxies} }) {
		my ($b, $l) = ($self->{baseline}[$pi] // {}, $self->{slab_last}[$pi] // {});
		push @slabs, "proxy $pi: " . join(' ', map { "$_=" . ($b->{$_} // '?') . '/' . ($l->{$_} // '?') }
			grep { ($b->{$_} // 0) || ($l->{$_} // 0) } sort keys %$b);
	}
	return { (map { $_ => $self->{$_} }
		qw(sequences mismatches invariant_failures rounds seed problems kinds time_run time_check)),
		slabs => \@slabs };
}

sub DESTROY
{
	my ($self) = @_;
	local ($@, $!, $?);
	File::Path::remove_tree($self->{tmp}) if $self->{tmp} && -d $self->{tmp} && !$ENV{PGSLAB_KEEP_TMP};
}

require File::Path;

1;
