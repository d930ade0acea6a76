# 074_prep_drivers.pl -- protocol-level prepared statements in transaction
# mode through node-postgres, postgres.js, pgJDBC and DBD::Pg (072 has
# pgbench, psycopg 3 and asyncpg): 20 clients on 3 backends, each reusing
# its three prepared statements across 50 transactions.  Every driver runs
# first straight against PostgreSQL, then through a fresh pgslab; both runs
# must return exactly the expected rows (a digest of every value read), and
# pgslab's registry must show that the statements were prepared by name
# (a driver falling back to unnamed statements fails the test).  A missing
# driver fails too: `make deps` installs them all.

use strict;
use warnings;

use Cwd qw(abs_path);
use Digest::MD5 qw(md5_hex);
use FindBin;
use Time::HiRes qw(time);
use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $root = abs_path("$FindBin::Bin/../..");
my ($CLIENTS, $TXNS) = (20, 50);

my $node = PgSlab::Test::Cluster->new(name => 'c074');
$node->start;
$node->safe_psql('postgres', 'CREATE TABLE drv_items (tag text, client int, i int)');
my $cport = $node->port;
my $host = '127.0.0.1';
my ($user, $pw) = ($node->superuser, $node->superuser_password);

# What every client reads, in client order: per transaction i of client k,
# "i+k,md5('k:i'),i+1;" (the count after its own i+1 inserts).
my $want = 'ok=20 errors=0 digest='
    . md5_hex(join '', map { my $k = $_; map { ($_ + $k) . ',' . md5_hex("$k:$_") . ',' . ($_ + 1) . ';' }
		    0 .. $TXNS - 1 } 0 .. $CLIENTS - 1);

# The three statements as each driver sends them ($n placeholders).
my @stmts = ('SELECT $1::int + $2::int AS v, md5($3::text) AS t',
	'INSERT INTO drv_items (tag, client, i) VALUES ($1, $2, $3)',
	'SELECT count(*)::int AS n FROM drv_items WHERE tag = $1 AND client = $2');

my $jar = '/usr/share/java/postgresql.jar';
my @drivers = (
	{ name => 'node-postgres', needs => "$root/test/node/node_modules/pg/package.json",
	  argv => [ 'node', "$root/test/node/node_pg.mjs" ] },
	{ name => 'postgres.js', needs => "$root/test/node/node_modules/postgres/package.json",
	  argv => [ 'node', "$root/test/node/postgresjs.mjs" ] },
	{ name => 'pgJDBC', needs => $jar,
	  argv => [ 'java', '-XX:TieredStopAtLevel=1', '-cp', $jar,
		"$root/test/drivers/PgJdbc.java" ], evict => 1 },
	{ name => 'DBD::Pg', needs => undef,
	  argv => [ $^X, "$root/test/drivers/dbd_pg.pl" ] },
);

sub wait_idle
{
	my ($p) = @_;
	for (1 .. 100) {
		my ($pl) = grep { $_->{database} eq 'postgres' } $p->admin_hash('SHOW POOLS');
		return 1 if $pl && $pl->{sv_active} == 0 && $pl->{cl_waiting} == 0 && $pl->{cl_active} == 0;
		select(undef, undef, undef, 0.1);
	}
	return 0;
}

sub run_driver
{
	my ($d, $port, $tag) = @_;
	my $t0 = time;
	my ($rc, $out, $err) = PgSlab::Test::Cluster::run_command(
		[ @{ $d->{argv} }, $host, $port, $user, $pw, $tag ], timeout => 120);
	return ($out, $err, time - $t0);
}

# Runs driver <d> through a fresh pgslab (transaction mode, 3 backends for
# 20 clients, <set> over the defaults) and checks rows, inserts, and that
# the statements were prepared by name; returns pgslab's SHOW STATS row and
# the prepared_statements of its backends.
sub through_pgslab
{
	my ($d, $what, $tag, %set) = @_;
	my $name = $d->{name};
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => "p074_$tag",
		databases => { postgres => "host=$host port=$cport dbname=postgres" },
		settings => { pool_mode => 'transaction', default_pool_size => 3,
			max_client_conn => 100, auth_type => 'trust',
			# pgJDBC sends it; PgBouncer's documented setting for JDBC
			ignore_startup_parameters => 'extra_float_digits', %set },
		userlist => [ [ $user, $pw ] ]);
	$p->start;
	my ($out, $err, $secs) = run_driver($d, $p->port, $tag);
	is($out, $want, sprintf('%s through pgslab%s, %d clients on 3 backends: the same rows (%.1fs)',
		$name, $what, $CLIENTS, $secs)) or diag($err);
	is($node->safe_psql('postgres', "SELECT count(*) FROM drv_items WHERE tag = '$tag'"),
		$CLIENTS * $TXNS, "$name$what: every insert committed once");

	# the statements went through the registry by name (once evicted from
	# every backend, with the clients gone, a statement leaves it)
	unless ($set{max_prepared_statements}) {
		my %ps = map { $_->{statement} => $_ } $p->admin_hash('SHOW PREPARED_STATEMENTS');
		my @bad = grep { !$ps{$_} || $ps{$_}{name} !~ /^PGSLAB_\d+$/ || $ps{$_}{servers} < 1
			    || $ps{$_}{servers} > 3 } @stmts;
		ok(!@bad, "$name$what: SHOW PREPARED_STATEMENTS holds the three statements, "
			    . 'each on 1-3 backends')
		    or diag(join "\n", 'missing or wrong: ', @bad, 'registry:',
			map { "$_->{name} $_->{servers} $_->{statement}" } values %ps);
	}
	my ($st) = grep { $_->{database} eq 'postgres' } $p->admin_hash('SHOW STATS');
	# DBD::Pg runs a statement's first execution unnamed (pg_switch_prepared)
	ok($st->{total_bind_count} >= $CLIENTS * ($TXNS - 1) * @stmts
		    && $st->{total_client_parse_count} >= $CLIENTS * @stmts,
		"$name$what: SHOW STATS $st->{total_bind_count} named binds, "
		    . "$st->{total_client_parse_count} client parses, "
		    . "$st->{total_server_parse_count} server parses");
	ok(wait_idle($p), "$name$what: pool idle after the run");
	my @sp = map { $_->{prepared_statements} } grep { $_->{database} eq 'postgres' }
	    $p->admin_hash('SHOW SERVERS');
	is($p->stop, 0, "$name$what: proxy exits cleanly");
	return ($st, \@sp);
}

for my $d (@drivers) {
	my $name = $d->{name};
	(my $tag = lc $name) =~ s/\W//g;

	ok(!defined $d->{needs} || -e $d->{needs}, "$name is installed")
	    or diag("missing $d->{needs}: run make deps");

	# straight to PostgreSQL: the reference
	my ($out, $err, $secs) = run_driver($d, $cport, "$tag-direct");
	is($out, $want, sprintf('%s straight to PostgreSQL: the expected rows (%.1fs)', $name, $secs))
	    or diag($err);

	# each backend prepares each statement about once, and it is reused; a
	# client's Parse behind other requests in its pipeline (pgJDBC's named
	# BEGIN first) is sent for real even when the backend holds it (README)
	my ($st, $sp) = through_pgslab($d, '', "$tag-pgslab");
	ok($st->{total_server_parse_count} >= @stmts
		    && $st->{total_server_parse_count} <= $st->{total_bind_count} / 50,
		"$name: $st->{total_server_parse_count} server parses for $st->{total_bind_count} binds");
	ok(@$sp >= 1 && @$sp <= 3 && !grep({ $_ < @stmts } @$sp),
		"$name: SHOW SERVERS prepared_statements " . join(',', @$sp));

	next unless $d->{evict};
	# a backend keeps 2 statements: nearly every Bind meets one that lacks
	# its statement (evict, inject Parse, rewrite)
	($st, $sp) = through_pgslab($d, ' (max_prepared_statements=2)', "$tag-evict",
		max_prepared_statements => 2);
	ok($st->{total_server_parse_count} > $st->{total_bind_count} / 3,
		"$name: $st->{total_server_parse_count} server parses for $st->{total_bind_count} binds");
	ok(@$sp >= 1 && !grep({ $_ > 2 } @$sp),
		"$name: SHOW SERVERS prepared_statements at most 2: " . join(',', @$sp));
}

is($node->safe_psql('postgres', 'SELECT count(DISTINCT tag) FROM drv_items'),
	2 * @drivers + grep({ $_->{evict} } @drivers), 'one set of rows per driver and run');

done_testing();
