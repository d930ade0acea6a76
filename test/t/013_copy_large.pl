# 013_copy_large.pl -- COPY in and out with checksums, 64 MiB values, and pgslab's RSS staying bounded.

use strict;
use warnings;

use Test::More;
use Digest::MD5 qw(md5_hex);
use DBD::Pg qw(:pg_types);
use Time::HiRes qw(time);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

use constant {
	NROWS   => 200_000,
	BIG     => 64 * 1024 * 1024,
	RSS_MAX => 40 * 1024,		# kB
};

my $node = PgSlab::Test::Cluster->new(name => 'c013');
$node->start;
$node->create_user('app', 'app_pw');
$node->safe_psql('postgres', <<'SQL');
CREATE TABLE c013 (i int PRIMARY KEY, t text);
CREATE TABLE big013 (id int PRIMARY KEY, v text, b bytea);
GRANT ALL ON c013, big013 TO app;
SQL
my $cport = $node->port;
my $proxy = PgSlab::Test::Proxy->new(
	cluster   => $node,
	name      => 'p013',
	databases => {
		postgres => "host=127.0.0.1 port=$cport dbname=postgres",
		txdb     => "host=127.0.0.1 port=$cport dbname=postgres pool_mode=transaction",
	},
	settings => { default_pool_size => 2 },
	userlist => userlist_from_cluster($node, 'app'));
$proxy->start;
my %app = (user => 'app', password => 'app_pw');
my $direct = $node->connect_dbi('postgres');

# VmRSS / VmHWM (peak) of pgslab, in kB.
sub proxy_mem
{
	my %m;
	open(my $fh, '<', '/proc/' . $proxy->pid . '/status') or return (0, 0);
	while (<$fh>) {
		$m{$1} = $2 if /^(VmRSS|VmHWM):\s+(\d+) kB/;
	}
	return ($m{VmRSS} // 0, $m{VmHWM} // 0);
}
my ($rss0, $hwm0) = proxy_mem();
ok($rss0 > 0, "pgslab RSS at start: $rss0 kB");

# --- COPY FROM STDIN, 200k rows -------------------------------------------------------------------
my $dbh = $proxy->connect_dbi('txdb', %app);
my $ctx = Digest::MD5->new;
my $t0 = time;
$dbh->do('COPY c013 (i, t) FROM STDIN');
my $batch = '';
for my $i (1 .. NROWS) {
	my $line = "$i\t" . md5_hex($i) . "\n";
	$ctx->add($line);
	$batch .= $line;
	if (length $batch > 60000 || $i == NROWS) {
		$dbh->pg_putcopydata($batch);
		$batch = '';
	}
}
ok($dbh->pg_putcopyend, 'COPY FROM STDIN of 200k rows through pgslab (transaction pool)');
my $sum = $ctx->hexdigest;
diag(sprintf('COPY in: %.2fs', time - $t0));
my ($n, $srv_sum) = $direct->selectrow_array(
	q{SELECT count(*), md5(string_agg(i || E'\t' || t || E'\n', '' ORDER BY i)) FROM c013});
is($n, NROWS, 'server has 200000 rows');
is($srv_sum, $sum, 'md5 of the table on the server equals md5 of the data sent');
is($dbh->selectrow_array('SELECT 1'), 1, 'connection usable after COPY FROM');

# --- COPY TO STDOUT -------------------------------------------------------------------------------------
$t0 = time;
$dbh->do('COPY (SELECT i, t FROM c013 ORDER BY i) TO STDOUT');
my $out_ctx = Digest::MD5->new;
my ($rows, $buf) = (0, '');
while ($dbh->pg_getcopydata($buf) >= 0) {
	$out_ctx->add($buf);
	$rows++;
}
is($rows, NROWS, 'COPY TO STDOUT through pgslab returns 200000 rows');
is($out_ctx->hexdigest, $sum, 'md5 of COPY TO STDOUT equals md5 of the data sent');
diag(sprintf('COPY out: %.2fs', time - $t0));
is($dbh->selectrow_array('SELECT 2'), 2, 'connection usable after COPY TO');

my ($rc, $out, $err) = $proxy->psql('postgres', 'COPY (SELECT i, t FROM c013 ORDER BY i) TO STDOUT',
	%app);
is($rc, 0, 'psql COPY TO STDOUT through pgslab (session pool)') or diag($err);
is(md5_hex("$out\n"), $sum, 'psql: md5 of the output equals md5 of the data sent');

# psql \copy FROM a file, in session mode.
my $file = $proxy->basedir . '/copy_in.tsv';
open(my $fh, '>', $file) or die;
print $fh map { ($_ + NROWS) . "\tpsql-$_\n" } 1 .. 1000;
close $fh;
($rc, $out, $err) = $proxy->psql('postgres', "\\copy c013 (i, t) FROM '$file'", %app);
is($rc, 0, 'psql \copy FROM a file through pgslab') or diag($err);
is($direct->selectrow_array(q{SELECT count(*) FROM c013 WHERE t LIKE 'psql-%'}), 1000,
	'... 1000 rows arrived');

# COPY FROM with bad data: error, nothing inserted, connection usable.
$dbh->do('COPY c013 (i, t) FROM STDIN');
$dbh->pg_putcopydata("900001\tok\n");
$dbh->pg_putcopydata("notanumber\tbad\n");
ok(!eval { $dbh->pg_putcopyend; 1 }, 'COPY FROM with a bad row fails');
is($dbh->state, '22P02', '... with SQLSTATE 22P02');
is($direct->selectrow_array('SELECT count(*) FROM c013 WHERE i = 900001'), 0,
	'... and nothing of that COPY was committed');
is($dbh->selectrow_array('SELECT 3'), 3, 'transaction-pool connection usable after a failed COPY');

# COPY inside a transaction, rolled back.
$dbh->begin_work;
$dbh->do('COPY c013 (i, t) FROM STDIN');
$dbh->pg_putcopydata("$_\tin-tx\n") for 900010 .. 900019;
$dbh->pg_putcopyend;
is($dbh->selectrow_array(q{SELECT count(*) FROM c013 WHERE t = 'in-tx'}), 10,
	'COPY inside a transaction is visible to it');
$dbh->rollback;
is($direct->selectrow_array(q{SELECT count(*) FROM c013 WHERE t = 'in-tx'}), 0,
	'... and gone after ROLLBACK');
$dbh->disconnect;

# --- 64 MiB values ------------------------------------------------------------------------------------
my $xs = 'x' x BIG;
my $xs_md5 = md5_hex($xs);
{
	my $h = $proxy->connect_dbi('txdb', %app, attrs => { pg_server_prepare => 0 });
	$t0 = time;
	my ($v) = $h->selectrow_array('SELECT repeat(\'x\', 64 * 1024 * 1024)');
	is(length($v // ''), BIG, "SELECT repeat('x', 64 MiB) through pgslab: length");
	ok(defined $v && md5_hex($v) eq $xs_md5, "... md5 matches");
	diag(sprintf('64 MiB out: %.2fs', time - $t0));
	undef $v;
	is($h->selectrow_array(q{SELECT md5(repeat('x', 64 * 1024 * 1024))}), $xs_md5,
		"... and equals the server's md5");
	$h->disconnect;
}

# A 64 MiB value that is not one repeated byte.
my $chunk = join('', map { md5_hex($_) } 1 .. 32768);	# 1 MiB
my $big = join('', map { substr($chunk, $_ * 997) . substr($chunk, 0, $_ * 997) } 0 .. 63);
is(length $big, BIG, 'test value is 64 MiB');
my $big_md5 = md5_hex($big);

for my $case ([ 1, 'extended (bind parameter)' ], [ 0, 'simple (inline literal)' ]) {
	my ($sp, $what) = @$case;
	my $h = $proxy->connect_dbi('txdb', %app, attrs => { pg_server_prepare => $sp });
	$t0 = time;
	ok($h->do('INSERT INTO big013 (id, v) VALUES (?, ?)', undef, 10 + $sp, $big),
		"INSERT of a 64 MiB text via the $what protocol");
	diag(sprintf('64 MiB in (%s): %.2fs', $what, time - $t0));
	my ($len, $md5) = $direct->selectrow_array(
		'SELECT length(v), md5(v) FROM big013 WHERE id = ?', undef, 10 + $sp);
	is($len, BIG, '... length on the server is 64 MiB');
	is($md5, $big_md5, '... md5 on the server matches');
	$h->disconnect;
}

{
	my $h = $proxy->connect_dbi('postgres', %app);
	my ($v) = $h->selectrow_array('SELECT v FROM big013 WHERE id = 11');
	ok(defined $v && length($v) == BIG && md5_hex($v) eq $big_md5,
		'64 MiB text read back through pgslab (session pool) intact');
	undef $v;
	$h->do('COPY (SELECT v FROM big013 WHERE id = 11) TO STDOUT');
	my ($cb, $all) = ('', '');
	$all .= $cb while $h->pg_getcopydata($cb) >= 0;
	ok(length($all) == BIG + 1 && md5_hex(substr($all, 0, BIG)) eq $big_md5,
		'64 MiB single-row COPY TO STDOUT through pgslab intact');
	undef $all;

	# Binary: 16 MiB of every byte value, as a bytea bind parameter.
	my $bin = join('', map { chr($_ & 255) } 0 .. 65535);
	$bin = join('', map { substr($bin, $_ * 251) . substr($bin, 0, $_ * 251) } 0 .. 255);
	my $sth = $h->prepare('UPDATE big013 SET b = ? WHERE id = 11');
	$sth->bind_param(1, $bin, { pg_type => PG_BYTEA });
	ok($sth->execute, 'UPDATE with a 16 MiB bytea bind parameter');
	is($direct->selectrow_array(q{SELECT md5(b) FROM big013 WHERE id = 11}), md5_hex($bin),
		'... md5 on the server matches');
	my ($back) = $h->selectrow_array('SELECT b FROM big013 WHERE id = 11');
	ok(defined $back && $back eq $bin, '16 MiB bytea read back through pgslab intact');
	$h->disconnect;
}

# --- memory --------------------------------------------------------------------------------------------
my ($rss, $hwm) = proxy_mem();
diag("pgslab VmRSS $rss kB, VmHWM (peak) $hwm kB after moving ~600 MiB through it");
ok($hwm > 0 && $hwm < RSS_MAX, "pgslab peak RSS stays below 40 MB while streaming 64 MiB messages ($hwm kB)");
ok($proxy->is_running, 'pgslab still running');
is($proxy->safe_psql('txdb', 'SELECT 1', %app), '1', 'pgslab still serves');

$direct->disconnect;
is($proxy->stop, 0, 'pgslab exits cleanly on SIGINT');
done_testing();
