#!/usr/bin/perl
# bench.pl -- make bench: pgslab vs PgBouncer vs direct PostgreSQL 15 side by side, and pgslab vs pgslab-malloc.
#
# One throw-away PostgreSQL 15 (PgSlab::Test::Cluster), pgbench tables, and
# the poolers in front of it with identical settings (transaction pooling,
# pool size 20, SCRAM with the verifiers from pg_authid, max_prepared_statements
# 200 where it exists): pgslab, one PgBouncer per --pgbouncer (1.25.2 and
# Debian's 1.18, say) and pgslab-malloc (every slab cache bypassed to
# malloc/free, -DSLAB_BYPASS).  PostgreSQL has ssl=on with a throw-away CA
# made by openssl; TLS scenarios get their own pooler instances (client TLS,
# or TLS both sides with server_tls_sslmode=require); the plain ones say
# server_tls_sslmode=disable.
# Each pgbench scenario runs against every target in turn (pgslab, PgBouncer,
# direct, pgslab-malloc; repeated), then come the idle-client memory test and
# the count-bounded runs (callgrind instructions, strace system calls,
# system-allocator calls per transaction).  Writes bench/results/report.md,
# runs.csv and chart.png, and prints the report.  perl bench/bench.pl --help.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../test/perl";

use Cwd qw(abs_path);
use Digest::SHA qw(hmac_sha256 sha256);
use File::Path qw(make_path remove_tree);
use File::Temp ();
use Getopt::Long qw(GetOptions);
use IPC::Open2 qw(open2);
use List::Util qw(max min sum);
use MIME::Base64 qw(encode_base64);
use POSIX ();
use Time::HiRes qw(time sleep);

use PgSlab::Test::Cluster qw(pg_bindir);
use PgSlab::Test::Proxy;
use PgSlab::Test::TLS qw(make_certs);

my $ROOT = abs_path("$FindBin::Bin/..");

# ---------------------------------------------------------------------------
# Options

my @ARGV_ORIG = @ARGV;
my %opt = (
	pgslab          => "$ROOT/pgslab",
	'pgslab-malloc' => "$ROOT/pgslab-malloc",
	pgbouncer       => [],
	'idle-client'   => "$ROOT/build/rel/bench_idle",
	out             => "$ROOT/bench/results",
	'idle-iterations' => 32,
	'idle-tls'      => undef,
);
GetOptions(\%opt, 'quick', 'reps=i', 'duration=i', 'idle=i', 'scale=i', 'only=s',
	'targets=s', 'budget=i', 'out=s', 'pgslab=s', 'pgslab-malloc=s', 'pgbouncer=s@',
	'idle-client=s', 'idle-tls=i', 'no-tls', 'prep-callgrind!', 'idle-iterations=i', 'no-callgrind', 'no-strace', 'no-idle', 'help')
    or die "bad options (see --help)\n";
if ($opt{help}) {
	print <<'EOT';
usage: perl bench/bench.pl [--quick] [options]
  --quick             short subset (a couple of minutes)
  --reps N            repetitions per scenario and target (full 3, quick 2)
  --duration S        seconds per pgbench run (full 5, quick 2)
  --scale N           pgbench scale factor (full 10, quick 2)
  --idle N            idle authenticated clients per pooler (full 10000, quick 2000)
  --idle-iterations N SCRAM iterations of role bench_fast (idle clients, S1000; default 32)
  --only S10,C50,...  scenarios to run (S10 S100 S1000 TPCB100 C50 EXT100 PREP100
                      PREP10 TLS10 TLSB10 TLSC10)
  --targets a,b       among pgslab,pgbouncer,pgbouncer2,...,direct,pgslab-malloc
  --idle-tls N        idle TLS clients per pooler (full 1000, quick 300; 0: none)
  --budget S          overall time budget in seconds (full 1080, quick 240)
  --out DIR           where report.md, runs.csv and chart.png go (bench/results)
  --pgslab P --pgslab-malloc P --pgbouncer P --idle-client P   binaries;
                      --pgbouncer may be repeated (targets pgbouncer, pgbouncer2, ...;
                      default /usr/sbin/pgbouncer), e.g. 1.25.2 and Debian's 1.18
  --no-callgrind --no-strace --no-idle   skip those parts
  --no-tls            no TLS scenarios and no idle TLS clients
EOT
	exit 0;
}
$opt{pgbouncer} = [ '/usr/sbin/pgbouncer' ] unless @{ $opt{pgbouncer} };
# PgBouncer binaries: targets pgbouncer, pgbouncer2, ... in --pgbouncer order.
my (@PGB_KEYS, %PGB_VER);
my @pgb_bins = @{ $opt{pgbouncer} };
for my $i (0 .. $#pgb_bins) {
	my $k = $i ? 'pgbouncer' . ($i + 1) : 'pgbouncer';
	$opt{$k} = abs_path($pgb_bins[$i]) // $pgb_bins[$i];
	my ($v) = (`'$opt{$k}' --version 2>/dev/null` // '') =~ /PgBouncer (\S+)/;
	$PGB_VER{$k} = $v // '?';
	push @PGB_KEYS, $k;
}
sub is_pgb { return $_[0] =~ /^pgbouncer\d*$/ }
# PgBouncer >= 1.21 has max_prepared_statements
sub pgb_has_prep
{
	my ($v) = $PGB_VER{ $_[0] } =~ /^(\d+\.\d+)/ or return 0;
	my ($a, $b) = split /\./, $v;
	return $a > 1 || $b >= 21;
}
for my $k ('pgslab', 'pgslab-malloc', 'idle-client', 'out') {
	next unless defined $opt{$k};
	make_path($opt{$k}) if $k eq 'out';
	$opt{$k} = abs_path($opt{$k}) // $opt{$k};
}
my $QUICK = $opt{quick} ? 1 : 0;
my $REPS = $opt{reps} // ($QUICK ? 2 : 3);
my $DUR = $opt{duration} // ($QUICK ? 2 : 5);
my $SCALE = $opt{scale} // ($QUICK ? 2 : 10);
my $IDLE_N = $opt{idle} // ($QUICK ? 2000 : 10000);
my $IDLE_TLS_N = $opt{'no-tls'} ? 0 : $opt{'idle-tls'} // ($QUICK ? 300 : 1000);
my $BUDGET = $opt{budget} // ($QUICK ? 240 : 1080);
my $CB_N1 = $QUICK ? 100 : 200;		# count-bounded runs: transactions per client
my $CB_N2 = $QUICK ? 400 : 1200;
my $CB_CLIENTS = 10;
my $REAP_WAIT = 12;			# pgslab's janitor reaps the arena every 10 s

my @SCENARIOS = (
	{ id => 'S10', desc => 'pgbench -S (select only), 10 clients', args => [ '-S', '-c', 10 ] },
	{ id => 'S100', desc => 'pgbench -S, 100 clients', args => [ '-S', '-c', 100 ] },
	{ id => 'S1000', desc => 'pgbench -S, 1000 clients (role bench_fast: cheap SCRAM '
	  . 'verifier, so 1000 client-side key derivations do not eat the run; -T + 3 s)',
	  args => [ '-S', '-c', 1000 ], user => 'bench_fast', extra_secs => 3 },
	{ id => 'TPCB100', desc => 'TPC-B-like (default script), 100 clients',
	  args => [ '-c', 100 ] },
	{ id => 'C50', desc => 'connection churn: -C -S, 50 clients (one login per transaction)',
	  args => [ '-S', '-C', '-c', 50 ] },
	{ id => 'EXT100', desc => '-M extended -S, 100 clients',
	  args => [ '-S', '-M', 'extended', '-c', 100 ] },
	{ id => 'PREP100', desc => '-M prepared -S, 100 clients (transaction pooling; '
	  . 'max_prepared_statements 200 in pgslab and PgBouncer >= 1.21; PgBouncer 1.18 has no '
	  . 'prepared-statement support and fails)',
	  args => [ '-S', '-M', 'prepared', '-c', 100 ] },
	{ id => 'PREP10', desc => '-M prepared -S, 10 clients (as PREP100)',
	  args => [ '-S', '-M', 'prepared', '-c', 10 ] },
	{ id => 'TLS10', desc => 'client TLS: -S, 10 clients over sslmode=require (TLS 1.3); '
	  . 'pooler to PostgreSQL plain (direct: TLS to PostgreSQL)',
	  args => [ '-S', '-c', 10 ], tls => 'client' },
	{ id => 'TLSB10', desc => 'TLS both sides: -S, 10 clients over sslmode=require, pooler to '
	  . 'PostgreSQL with server_tls_sslmode=require (direct: TLS to PostgreSQL)',
	  args => [ '-S', '-c', 10 ], tls => 'both' },
	{ id => 'TLSC10', desc => 'TLS connection churn: -C -S, 10 clients over sslmode=require '
	  . '(a TLS handshake and a SCRAM login per transaction); pooler to PostgreSQL plain',
	  args => [ '-S', '-C', '-c', 10 ], tls => 'client' },
);
my %SCEN_BY_ID = map { $_->{id} => $_ } @SCENARIOS;
my @scen_ids = $opt{only} ? split(/,/, $opt{only})
    : $QUICK ? qw(S10 S100 C50 PREP100 TLS10 TLSC10) : map { $_->{id} } @SCENARIOS;
@scen_ids = grep { !$SCEN_BY_ID{$_} || !$SCEN_BY_ID{$_}{tls} } @scen_ids if $opt{'no-tls'};
for (@scen_ids) { die "unknown scenario $_\n" unless $SCEN_BY_ID{$_} }
my @SCEN = map { $SCEN_BY_ID{$_} } @scen_ids;

my @ALL_TARGETS = ('pgslab', @PGB_KEYS, 'direct', 'pgslab-malloc');
my %LABEL = (pgslab => 'pgslab', direct => 'direct', 'pgslab-malloc' => 'pgslab-malloc',
	map { $_ => "PgBouncer $PGB_VER{$_}" } @PGB_KEYS);
my @TARGETS = $opt{targets} ? split(/,/, $opt{targets}) : @ALL_TARGETS;
for my $t (@TARGETS) { die "unknown target $t\n" unless $LABEL{$t} }
my @POOLERS = grep { $_ ne 'direct' } @TARGETS;

# ---------------------------------------------------------------------------
# File descriptors: 1000 pgbench clients and N idle clients need more than
# the usual 1024.  Re-exec under a raised limit; children inherit it.

my $NOFILE_WANT = $IDLE_N + 2200;
if (!$ENV{PGSLAB_BENCH_NOFILE}) {
	$ENV{PGSLAB_BENCH_NOFILE} = $NOFILE_WANT;
	exec('/bin/sh', '-c',
		'ulimit -n "$PGSLAB_BENCH_NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)"; exec "$@"',
		'sh', $^X, $0, @ARGV_ORIG) or die "exec: $!";
}
chomp(my $NOFILE = `sh -c 'ulimit -n'`);
if ($NOFILE ne 'unlimited' && $NOFILE < $NOFILE_WANT) {
	my $n = $NOFILE - 2200;
	$n = 0 if $n < 0;
	warn "fd limit $NOFILE < $NOFILE_WANT: idle clients reduced to $n\n";
	$IDLE_N = $n;
}

# Our own children (pgbench, strace, idle clients, callgrind_control), killed
# on teardown: at exit and on SIGINT/SIGTERM (the harness's handlers run
# every teardown hook, then stop the proxies and the cluster).
my %CHILD;
push @PgSlab::Test::Cluster::TEARDOWN_HOOKS, sub {
	for my $pid (keys %CHILD) {
		kill 'TERM', $pid;
	}
	for my $pid (keys %CHILD) {
		if (!defined PgSlab::Test::Cluster::wait_pid($pid, 2)) {
			kill 'KILL', $pid;
			waitpid($pid, 0);
		}
		delete $CHILD{$pid};
	}
};

for my $k (keys %ENV) {
	delete $ENV{$k} if $k =~ /^PG/ && $k !~ /^PGSLAB/;
}
$| = 1;

my $T0 = time;
my $HZ = POSIX::sysconf(POSIX::_SC_CLK_TCK()) || 100;
my $TMP = File::Temp->newdir('pgslab_bench_XXXXXX', TMPDIR => 1);
my @NOTES;	# lines for the report's "notes" section

sub progress
{
	my ($fmt, @a) = @_;
	printf "[%4ds] $fmt\n", time - $T0, @a;
}

sub slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or return '';
	local $/;
	my $c = <$fh>;
	return $c // '';
}

sub loadavg
{
	my ($l) = split ' ', slurp('/proc/loadavg');
	return $l // 0;
}

# utime, stime in seconds of process <pid> (all its threads).
sub proc_cpu
{
	my ($pid) = @_;
	my $s = slurp("/proc/$pid/stat");
	return (0, 0) unless $s =~ s/^.*\)\s+//s;
	my @f = split ' ', $s;
	return ($f[11] / $HZ, $f[12] / $HZ);
}

# VmRSS, VmHWM (kB) of <pid>.
sub proc_mem
{
	my ($pid) = @_;
	my $s = slurp("/proc/$pid/status");
	my %m = $s =~ /^(VmRSS|VmHWM):\s+(\d+)/mg;
	return ($m{VmRSS} // 0, $m{VmHWM} // 0);
}

# Reset VmHWM to the current RSS (Linux >= 4.0), so each run has its own peak.
sub reset_hwm
{
	my ($pid) = @_;
	open(my $fh, '>', "/proc/$pid/clear_refs") or return 0;
	print $fh "5";
	return close($fh) ? 1 : 0;
}

sub median
{
	my @v = sort { $a <=> $b } grep { defined } @_;
	return undef unless @v;
	return @v % 2 ? $v[$#v / 2] : ($v[@v / 2 - 1] + $v[@v / 2]) / 2;
}

# A SCRAM-SHA-256 verifier for <pw> with <iter> iterations (RFC 5802/7677),
# in pg_authid's form, so a role can be given a cheap one for the idle test.
sub scram_verifier
{
	my ($pw, $iter) = @_;
	my $salt = join('', map { chr(int(rand(256))) } 1 .. 16);
	my $u = hmac_sha256($salt . pack('N', 1), $pw);
	my $salted = $u;
	for (2 .. $iter) {
		$u = hmac_sha256($u, $pw);
		$salted ^= $u;
	}
	my $ck = hmac_sha256('Client Key', $salted);
	my $sk = hmac_sha256('Server Key', $salted);
	my $b = sub { encode_base64($_[0], '') };
	return "SCRAM-SHA-256\$$iter:" . $b->($salt) . '$' . $b->(sha256($ck)) . ':' . $b->($sk);
}

# Run a program to completion as one of our children.  Returns
# (exit code or 124 on timeout, stdout, stderr, wall seconds).
sub run_child
{
	my ($argv, %o) = @_;
	my $out = "$TMP/child.out";
	my $err = "$TMP/child.err";
	unlink $out, $err;
	my $t = time;
	my $pid = PgSlab::Test::Cluster::spawn_command($argv, env => $o{env} // {},
		as_user => $o{as_user}, stdout_file => $out, stderr_file => $err);
	$CHILD{$pid} = 1;
	my $st = PgSlab::Test::Cluster::wait_pid($pid, $o{timeout} // 120);
	my $rc;
	if (!defined $st) {
		kill 'TERM', $pid;
		$st = PgSlab::Test::Cluster::wait_pid($pid, 3);
		if (!defined $st) {
			kill 'KILL', $pid;
			waitpid($pid, 0);
		}
		$rc = 124;
	} else {
		$rc = $st & 127 ? 128 + ($st & 127) : $st >> 8;
	}
	delete $CHILD{$pid};
	return ($rc, slurp($out), slurp($err), time - $t);
}

my $FAST_PW;
my %PGENV = (PGUSER => 'bench', PGPASSWORD => 'bench_pw', PGDATABASE => 'postgres',
	PGCONNECT_TIMEOUT => 30, PGSSLMODE => 'disable', LC_ALL => 'C', LANG => 'C');

sub pgbench
{
	my ($host, $port, $args, %o) = @_;
	my %env = (%PGENV, PGHOST => $host, PGPORT => $port);
	$env{PGSSLMODE} = 'require' if delete $o{tls};
	@env{qw(PGUSER PGPASSWORD)} = ('bench_fast', $FAST_PW) if ($o{user} // '') eq 'bench_fast';
	delete $o{user};
	return run_child([ pg_bindir() . '/pgbench', @$args ], env => \%env, %o);
}

# ---------------------------------------------------------------------------
# Setup: cluster, roles, tables

for my $k (grep { $_ ne 'direct' } @TARGETS) {
	my $b = $opt{$k};
	die "$k binary $b not found (make $k)\n" unless -x $b;
}
die "bench_idle $opt{'idle-client'} not found\n" unless -x $opt{'idle-client'} || $opt{'no-idle'};

progress('pgslab benchmark (%s): %d scenario(s) x %d target(s) x %d rep(s), %d s each; '
	. 'fd limit %s; load average %s', $QUICK ? 'quick' : 'full', scalar @SCEN,
	scalar @TARGETS, $REPS, $DUR, $NOFILE, loadavg());

my $node = PgSlab::Test::Cluster->new(name => 'bench', max_connections => 1200,
	extra_conf => [
		'shared_buffers = 128MB',
		'log_connections = off',
		'log_disconnections = off',
		'autovacuum = off',
		'max_wal_size = 4GB',
		'checkpoint_timeout = 30min',
	]);
# TLS: a throw-away CA and server certificate (EC P-256) for PostgreSQL
# (ssl=on; plain poolers say server_tls_sslmode=disable) and the poolers'
# client side.  The key files are readable by the unprivileged user
# PgBouncer runs as.
my ($CERTS, $TLS_ON) = (undef, !$opt{'no-tls'});
if ($TLS_ON) {
	my $cd = "$TMP/certs";
	make_path($cd);
	$CERTS = make_certs($cd);
	my $dd = $node->data_dir;
	require File::Copy;
	File::Copy::copy($CERTS->{server_crt}, "$dd/server.crt") or die $!;
	File::Copy::copy($CERTS->{server_key}, "$dd/server.key") or die $!;
	my @pw = getpwnam('pgslab_pg');
	if ($> == 0 && @pw) {
		chown($pw[2], $pw[3], "$dd/server.crt", "$dd/server.key", glob("$cd/*"));
	}
	chmod 0600, "$dd/server.key";
	chmod 0755, $cd;
	chmod 0711, "$TMP";
	$node->append_conf('postgresql.conf', "ssl = on\n");
}
$node->start;
my $PGVER = $node->safe_psql('postgres', 'SHOW server_version');
my $SHMEM = $node->safe_psql('postgres', 'SHOW shared_memory_size');
$node->create_user('bench', 'bench_pw');
$node->safe_psql('postgres', 'GRANT ALL ON SCHEMA public TO bench');
# bench_fast: member of bench, with a SCRAM verifier of few iterations.  The
# pooler's side of a SCRAM login costs the same whatever the count; the
# client's PBKDF2 (~3 ms at 4096) would dominate 10,000 idle logins.
$FAST_PW = 'fast_pw';
my $fast_secret = scram_verifier($FAST_PW, $opt{'idle-iterations'});
$node->safe_psql('postgres', "CREATE ROLE bench_fast LOGIN PASSWORD '$fast_secret'; "
	. 'GRANT bench TO bench_fast');
{
	my ($rc, $out, $err) = pgbench($node->host, $node->port,
		[ '-i', '-q', '-s', $SCALE ], timeout => 300);
	die "pgbench -i failed: $err\n" if $rc;
}
progress('PostgreSQL %s on 127.0.0.1:%d (max_connections 1200, fsync off); pgbench scale %d',
	$PGVER, $node->port, $SCALE);

my $USERLIST = userlist_from_cluster($node, 'bench', 'bench_fast');
my %POOL_SETTINGS = (
	pool_mode          => 'transaction',
	default_pool_size  => 20,
	max_client_conn    => $IDLE_N + 1200,
	auth_type          => 'scram-sha-256',
	log_connections    => 0,
	log_disconnections => 0,
);
my $RUN_AS = $> == 0 ? 'pgslab_pg' : undef;	# pgbouncer refuses to run as root

# A pooler: { kind, proxy, dbh (pgslab builds: admin console for SHOW MEM) }.
# Settings of TLS variant <tls> (undef: plain; 'client'; 'both') for <kind>.
sub pooler_settings
{
	my ($kind, $tls) = @_;
	my %s = %POOL_SETTINGS;
	# the same max_prepared_statements everywhere it exists (PgBouncer 1.18 has none)
	$s{max_prepared_statements} = 200 if !is_pgb($kind) || pgb_has_prep($kind);
	$s{server_tls_sslmode} = ($tls // '') eq 'both' ? 'require' : 'disable' if $TLS_ON;
	if ($tls) {
		%s = (%s, client_tls_sslmode => 'require', client_tls_key_file => $CERTS->{server_key},
			client_tls_cert_file => $CERTS->{server_crt});
	}
	return \%s;
}

sub pooler_new
{
	my ($kind, %o) = @_;
	my $pgb = is_pgb($kind);
	my $bin = $opt{$kind};
	my @args;
	if ($o{valgrind}) {
		@args = ('--tool=callgrind', '--callgrind-out-file=callgrind.out', $bin);
		$bin = '/usr/bin/valgrind';
	}
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => $o{name} // $kind,
		binary   => $bin,
		args     => \@args,
		admin_db => $pgb ? 'pgbouncer' : 'pgslab',
		run_as   => $pgb ? $RUN_AS : undef,
		settings => pooler_settings($kind, $o{tls}),
		userlist => $USERLIST);
	$p->start(timeout => $o{valgrind} ? 90 : 15);
	return { kind => $kind, proxy => $p, name => $o{name} // $kind, tls => $o{tls} };
}

sub pooler_dbh
{
	my ($pl) = @_;
	return undef if is_pgb($pl->{kind});
	return $pl->{dbh} if $pl->{dbh};
	require DBI;
	my $p = $pl->{proxy};
	$pl->{dbh} = eval {
		DBI->connect('dbi:Pg:host=' . $p->host . ';port=' . $p->port . ';dbname=pgslab;sslmode='
		    . ($pl->{tls} ? 'require' : 'disable'),
			'pgsuper', 'pgsuper_pw', { RaiseError => 1, PrintError => 0, AutoCommit => 1 });
	};
	return $pl->{dbh};
}

# SHOW MEM rows of a pgslab build ({name, size, used, free, memtotal} each),
# read over one long-lived admin connection so no login happens in between.
sub show_mem
{
	my ($pl) = @_;
	my $rows;
	for (1 .. 2) {
		my $dbh = pooler_dbh($pl) or return undef;
		$rows = eval { $dbh->selectall_arrayref('SHOW MEM', { Slice => {} }) } and last;
		$pl->{dbh} = undef;	# pooler restarted? reconnect once
	}
	return $rows;
}

# pgslab's system-allocator call counter (SHOW MEM, row sysalloc_calls).
sub sysalloc_calls
{
	my ($pl) = @_;
	my $rows = show_mem($pl) or return undef;
	my ($r) = grep { $_->{name} eq 'sysalloc_calls' } @$rows;
	return $r ? $r->{used} : undef;
}

sub pooler_pid { $_[0]{proxy}->pid }

my %POOLER;	# kind -> plain pooler; "kind/client", "kind/both" -> TLS ones, made on demand
sub pooler_for
{
	my ($k, $tls) = @_;
	return $POOLER{$k} unless $tls;
	return $POOLER{"$k/$tls"} //= do {
		my $pl = pooler_new($k, name => "$k-tls-$tls", tls => $tls);
		my ($rc, $out, $err) = pgbench($pl->{proxy}->host, $pl->{proxy}->port,
			[ '-n', '-S', '-c', 10, '-j', 2, '-t', 20 ], timeout => 60, tls => 1);
		die "warm-up through $k (TLS $tls) failed: $err\n" if $rc;
		progress('%s with TLS (%s) started (pid %d, port %d), warmed up', $k, $tls,
			pooler_pid($pl), $pl->{proxy}->port);
		$pl;
	};
}
for my $k (@POOLERS) {
	$POOLER{$k} = pooler_new($k);
	my ($rc, $out, $err) = pgbench($POOLER{$k}{proxy}->host, $POOLER{$k}{proxy}->port,
		[ '-n', '-S', '-c', 20, '-j', 2, '-t', 50 ], timeout => 60);
	die "warm-up through $k failed: $err\n" if $rc;
	progress('%s started (pid %d, port %d), warmed up', $k, pooler_pid($POOLER{$k}),
		$POOLER{$k}{proxy}->port);
}

# ---------------------------------------------------------------------------
# Time-based runs, interleaved: for each scenario, rep 1 of every target,
# then rep 2, ...

my @RUNS;
my %RES;	# scen -> target -> [ run, ... ]
my $tb_deadline = $T0 + $BUDGET - ($QUICK ? 60 : 170);

sub percentile_from_logs
{
	my ($prefix) = @_;
	my @lat;
	for my $f (glob("$prefix.*")) {
		open(my $fh, '<', $f) or next;
		while (<$fh>) {
			my @x = split ' ';
			push @lat, $x[2] if defined $x[2] && $x[2] =~ /^\d+$/;
		}
		close $fh;
		unlink $f;
	}
	return (undef, undef, 0) unless @lat;
	@lat = sort { $a <=> $b } @lat;
	my $p99 = $lat[ POSIX::ceil(0.99 * @lat) - 1 ];
	return (sum(@lat) / @lat / 1000, $p99 / 1000, scalar @lat);
}

sub run_one
{
	my ($sc, $t, $rep) = @_;
	my %r = (scen => $sc->{id}, target => $t, rep => $rep, ok => 0);
	my ($host, $port, $pl, $pid);
	if ($t eq 'direct') {
		($host, $port) = ($node->host, $node->port);
	} else {
		$pl = pooler_for($t, $sc->{tls});
		unless ($pl->{proxy}->is_running) {
			push @NOTES, "$t had exited (wait status "
			    . ($pl->{proxy}->exit_status // '?') . ") before $sc->{id} rep $rep; restarted";
			$pl->{dbh} = undef;
			unless (eval { $pl->{proxy}->start; 1 }) {
				$r{err} = "pooler does not start again: $@";
				return \%r;
			}
		}
		($host, $port, $pid) = ($pl->{proxy}->host, $pl->{proxy}->port, pooler_pid($pl));
	}
	if (time > $tb_deadline) {
		$r{skipped} = 1;
		$r{err} = 'skipped: time budget';
		return \%r;
	}
	my $clients = $sc->{args}[-1];
	my $prefix = "$TMP/log_$sc->{id}_${t}_$rep";
	my (@c0, $sa0);
	if ($pid) {
		reset_hwm($pid);
		$sa0 = sysalloc_calls($pl) if !is_pgb($t);
		@c0 = proc_cpu($pid);
	}
	$r{load} = loadavg();
	my ($rc, $out, $err, $wall) = pgbench($host, $port,
		[ '-n', @{ $sc->{args} }, '-j', min(2, $clients), '-T', $DUR + ($sc->{extra_secs} // 0),
		  '-l', "--log-prefix=$prefix" ],
		user => $sc->{user}, tls => $sc->{tls}, timeout => $DUR + 120);
	if ($pid) {
		my @c1 = proc_cpu($pid);
		($r{rss_kb}, $r{hwm_kb}) = proc_mem($pid);
		$r{cpu_user} = $c1[0] - $c0[0];
		$r{cpu_sys} = $c1[1] - $c0[1];
		$r{cpu_s} = $r{cpu_user} + $r{cpu_sys};
		if (defined $sa0) {
			my $sa1 = sysalloc_calls($pl);
			$r{sysalloc} = $sa1 - $sa0 if defined $sa1;
		}
	}
	$r{wall} = $wall;
	($r{tps}) = $out =~ /^tps = ([\d.]+)/m;
	($r{txns}) = $out =~ /actually processed: (\d+)/;
	($r{lat_avg}, $r{lat_p99}, my $nlat) = percentile_from_logs($prefix);
	my $aborted = "$out\n$err" =~ /aborted|error/i;
	if ($rc == 0 && !$aborted && $r{txns} && $r{tps}) {
		$r{ok} = 1;
		if (defined $r{cpu_s}) {
			$r{cpu_us_txn} = $r{cpu_s} * 1e6 / $r{txns};
			$r{sys_share} = $r{cpu_s} > 0 ? $r{cpu_sys} / $r{cpu_s} : undef;
		}
		$r{sysalloc_txn} = $r{sysalloc} / $r{txns} if defined $r{sysalloc};
	} elsif ($rc == 0 && !$aborted && !$r{txns}) {
		my ($ct) = $out =~ /initial connection time = ([\d.]+) ms/;
		$r{err} = 'no transaction completed within -T'
		    . (defined $ct ? sprintf(' (initial connection time %.1f s)', $ct / 1000) : '');
	} else {
		my ($first) = grep { /error|fatal|abort/i } split /\n/, $err;
		$first //= (split /\n/, $err)[0] // "exit $rc";
		$first =~ s/^(pgbench:\s*)+(error:\s*)?//;
		$first =~ s/\s+/ /g;
		$first = substr($first, 0, 110) . '...' if length $first > 113;
		my $nab = () = $err =~ /^.*client \d+ (?:script \d+ )?aborted/mg;
		$r{err} = "exit $rc: $first"
		    . ($nab ? sprintf(' (%d of %d clients aborted, %d transactions done)', $nab,
			$clients, $r{txns} // 0) : '');
		$r{err} = 'timed out' if $rc == 124;
	}
	if ($pl && !$pl->{proxy}->is_running) {
		$r{ok} = 0;
		$r{err} = 'pooler exited during the run (status '
		    . ($pl->{proxy}->exit_status // '?') . ')';
	}
	return \%r;
}

sub fmt_num
{
	my ($v, $d) = @_;
	return '-' unless defined $v;
	$d //= $v >= 100 ? 0 : $v >= 10 ? 1 : 2;
	my $s = sprintf("%.${d}f", $v);
	1 while $s =~ s/^(-?\d+)(\d{3})/$1,$2/;
	return $s;
}

progress('time-based runs: %s; targets in turn: %s', join(' ', @scen_ids), join(' ', @TARGETS));
for my $sc (@SCEN) {
	for my $rep (1 .. $REPS) {
		for my $t (@TARGETS) {
			my $r = run_one($sc, $t, $rep);
			push @RUNS, $r;
			push @{ $RES{ $sc->{id} }{$t} }, $r;
			if ($r->{ok}) {
				progress('%-7s %d/%d %-13s %8s tps  avg %s ms  p99 %s ms%s%s  load %.2f',
					$sc->{id}, $rep, $REPS, $t, fmt_num($r->{tps}, 0),
					fmt_num($r->{lat_avg}), fmt_num($r->{lat_p99}),
					defined $r->{cpu_us_txn}
					    ? sprintf('  CPU %s us/txn', fmt_num($r->{cpu_us_txn})) : '',
					defined $r->{sysalloc}
					    ? sprintf('  sysalloc %d', $r->{sysalloc}) : '',
					$r->{load});
			} else {
				progress('%-7s %d/%d %-13s FAILED: %s', $sc->{id}, $rep, $REPS, $t,
					$r->{err});
			}
		}
	}
}

# ---------------------------------------------------------------------------
# Idle clients: a fresh instance of each pooler, N authenticated idle
# clients, RSS before/with them, then RSS after they all disconnect (1 s
# later, and after pgslab's periodic reap).

my %IDLE;

# Per-cache change in memtotal (and objects in use) between two SHOW MEM reads.
sub mem_delta
{
	my ($m0, $m1) = @_;
	return undef unless $m0 && $m1;
	my %b = map { $_->{name} => $_ } @$m0;
	my @d;
	for my $r (@$m1) {
		next if $r->{name} eq 'sysalloc_calls';
		my $o = $b{ $r->{name} } // { used => 0, memtotal => 0 };
		my ($du, $dm) = ($r->{used} - $o->{used}, $r->{memtotal} - $o->{memtotal});
		push @d, { name => $r->{name}, size => $r->{size}, used => $du, memtotal => $dm,
			total => $r->{memtotal} } if $du || $dm;
	}
	return \@d;
}

# Start bench_idle with <n> clients against <p>; returns (pid, out fh, in fh, line).
sub idle_open
{
	my ($p, $n, $tls) = @_;
	my $ci = 'host=' . $p->host . ' port=' . $p->port
	    . " dbname=postgres user=bench_fast password=$FAST_PW sslmode="
	    . ($tls ? 'require' : 'disable') . ' connect_timeout=60';
	my ($out, $in);
	my $pid = open2($out, $in, $opt{'idle-client'}, $ci, $n, 128, 150);
	$CHILD{$pid} = 1;
	my $line = <$out> // 'connected 0 0 0 no output';
	chomp $line;
	return ($pid, $out, $in, $line);
}

sub idle_close
{
	my ($pid, $out, $in) = @_;
	print $in "close\n";
	close $in;
	1 while <$out>;
	close $out;
	waitpid($pid, 0);
	delete $CHILD{$pid};
}

# idle passes: [ key in %IDLE, pooler kind, TLS variant, clients ]
my @IDLE_PASSES = map { [ $_, $_, undef, $IDLE_N ] } $IDLE_N > 0 ? @POOLERS : ();
push @IDLE_PASSES, map { [ "$_/tls", $_, 'client', $IDLE_TLS_N ] }
    grep { $_ ne 'pgslab-malloc' } @POOLERS if $IDLE_TLS_N > 0;
if (!$opt{'no-idle'} && @IDLE_PASSES && time < $T0 + $BUDGET - 40) {
	progress('idle clients: %d per pooler (SCRAM, %d-iteration verifier); %d TLS ones', $IDLE_N,
		$opt{'idle-iterations'}, $IDLE_TLS_N);
	for my $pass (@IDLE_PASSES) {
		my ($key, $k, $tls, $n_want) = @$pass;
		my $pl = pooler_new($k, name => 'idle-' . ($key =~ s{/}{-}r), tls => $tls);
		my $p = $pl->{proxy};
		my $pid = $p->pid;
		my %r;
		idle_close(idle_open($p, 1, $tls));	# pool, server connection, welcome cached
		my $sa0 = sysalloc_calls($pl);
		my $mem0 = show_mem($pl);
		sleep 1;
		my ($rss0) = proc_mem($pid);
		my @c0 = proc_cpu($pid);
		my ($cpid, $out, $in, $line) = idle_open($p, $n_want, $tls);
		my @c1 = proc_cpu($pid);
		my ($ok, $fail, $ms, $why) = $line =~ /^connected (\d+) (\d+) (\d+) ?(.*)$/;
		sleep 1;
		my ($rss1, $hwm1) = proc_mem($pid);
		my $sa1 = sysalloc_calls($pl);
		$r{mem} = mem_delta($mem0, show_mem($pl));
		idle_close($cpid, $out, $in);
		$r{closed_at} = time;
		sleep 1;
		($r{rss_after1}) = proc_mem($pid);
		%r = (%r, n => $ok // 0, failed => $fail // $n_want, ms => $ms, err => $why,
			rss0 => $rss0, rss1 => $rss1, hwm => $hwm1, pl => $pl);
		$r{bytes_per_client} = ($rss1 - $rss0) * 1024 / $r{n} if $r{n};
		$r{cpu_us_login} = (($c1[0] + $c1[1]) - ($c0[0] + $c0[1])) * 1e6 / $r{n} if $r{n};
		$r{sysalloc_login} = ($sa1 - $sa0) / $r{n} if $r{n} && defined $sa0 && defined $sa1;
		$IDLE{$key} = \%r;
		progress('idle %-17s %d connected (%d failed) in %.1f s: RSS %s -> %s kB, %s bytes/client; '
			. '1 s after disconnect %s kB', $key, $r{n}, $r{failed}, ($ms // 0) / 1000,
			fmt_num($rss0), fmt_num($rss1), fmt_num($r{bytes_per_client}, 0),
			fmt_num($r{rss_after1}));
	}
	for my $k (map { $_->[0] } @IDLE_PASSES) {
		my $r = $IDLE{$k} or next;
		my $wait = $r->{closed_at} + $REAP_WAIT - time;
		sleep $wait if $wait > 0;
		($r->{rss_after_reap}) = proc_mem($r->{pl}{proxy}->pid);
		$r->{pl}{dbh}->disconnect if $r->{pl}{dbh};
		$r->{pl}{proxy}->stop;
		progress('idle %-17s RSS %d s after disconnect: %s kB', $k, $REAP_WAIT,
			fmt_num($r->{rss_after_reap}));
		delete $r->{pl};
	}
}

# ---------------------------------------------------------------------------
# Count-bounded runs: pgbench -S -c 10 -t N1, then -t N2; per-transaction
# figures are differences (N2 - N1), so logins and start-up cancel out.

my (%SA_CB, %STRACE, %CALLGRIND, %CALLGRIND1, %CALLGRIND_PREP);
my $PREP_CG = $opt{'prep-callgrind'} // 1;
my $CB_TXN1 = $CB_CLIENTS * $CB_N1;
my $CB_TXN2 = $CB_CLIENTS * $CB_N2;
my @cb_args = ('-n', '-S', '-c', $CB_CLIENTS, '-j', 2);

sub cb_pgbench
{
	my ($p, $n, @more) = @_;
	my ($rc, $out, $err) = pgbench($p->host, $p->port, [ @cb_args, @more, '-t', $n ],
		timeout => 300);
	die "count-bounded pgbench through " . $p->binary . " failed: $err\n" if $rc;
	my ($done) = $out =~ /actually processed: (\d+)/;
	return $done;
}

progress('count-bounded runs: -S -c %d -t %d and -t %d', $CB_CLIENTS, $CB_N1, $CB_N2);
for my $k (grep { !is_pgb($_) } @POOLERS) {
	my $pl = $POOLER{$k};
	my $s0 = sysalloc_calls($pl);
	my $d1 = cb_pgbench($pl->{proxy}, $CB_N1);
	my $s1 = sysalloc_calls($pl);
	my $d2 = cb_pgbench($pl->{proxy}, $CB_N2);
	my $s2 = sysalloc_calls($pl);
	next unless defined $s0 && defined $s1 && defined $s2;
	# a stray call in run 1 (a timer, say) must not make this negative
	my $per_txn = max(0, (($s2 - $s1) - ($s1 - $s0)) / ($d2 - $d1));
	$SA_CB{$k} = { per_txn => $per_txn, per_login => (($s1 - $s0) - $per_txn * $d1) / $CB_CLIENTS,
		run1 => $s1 - $s0, run2 => $s2 - $s1, txn1 => $d1, txn2 => $d2 };
	progress('sysalloc %-13s %.4f calls/txn, %.1f per login (runs: %d calls / %d txn, %d / %d)',
		$k, $per_txn, $SA_CB{$k}{per_login}, $s1 - $s0, $d1, $s2 - $s1, $d2);
}

# strace -c -f -p PID over one run; returns { syscall => [calls, errors] }.
sub strace_run
{
	my ($pl, $n) = @_;
	my $pid = pooler_pid($pl);
	my $file = "$TMP/strace.$pl->{kind}.$n";
	my $errf = "$file.err";
	unlink $file, $errf;
	my $spid = PgSlab::Test::Cluster::spawn_command(
		[ 'strace', '-c', '-f', '-U', 'calls,errors,name', '-S', 'calls', '-o', $file,
		  '-p', $pid ], stderr_file => $errf);
	$CHILD{$spid} = 1;
	for (1 .. 100) {
		last if slurp($errf) =~ /attached/;
		sleep 0.05;
	}
	my $done = cb_pgbench($pl->{proxy}, $n);
	kill 'INT', $spid;
	PgSlab::Test::Cluster::wait_pid($spid, 10) // do { kill 'KILL', $spid; waitpid($spid, 0) };
	delete $CHILD{$spid};
	my %calls;
	for (split /\n/, slurp($file)) {
		next unless /^\s*(\d+)\s+(\d*)\s+(\w+)\s*$/;
		$calls{$3} = [ $1, $2 || 0 ];
	}
	return ($done, \%calls);
}

if (!$opt{'no-strace'}) {
	for my $k (@POOLERS) {
		last if time > $T0 + $BUDGET - 20;
		my $pl = $POOLER{$k};
		my ($d1, $c1) = strace_run($pl, $CB_N1);
		my ($d2, $c2) = strace_run($pl, $CB_N2);
		my %per;
		for my $sc (keys %$c2) {
			my $base = $c1->{$sc} // [ 0, 0 ];
			$per{$sc} = [ ($c2->{$sc}[0] - $base->[0]) / ($d2 - $d1),
				max(0, ($c2->{$sc}[1] - $base->[1]) / ($d2 - $d1)) ];
		}
		my $total = $per{total} // [ 0, 0 ];
		$STRACE{$k} = { per => \%per, total => $total->[0], errors => $total->[1],
			raw2 => $c2, txn2 => $d2 };
		progress('strace   %-13s %.2f system calls/txn (%s)', $k, $total->[0],
			join(', ', map { sprintf('%s %.2f', $_, $per{$_}[0]) }
			    grep { $_ ne 'total' && $per{$_}[0] >= 0.05 }
			    sort { $per{$b}[0] <=> $per{$a}[0] } keys %per));
	}
}

sub callgrind_cmd
{
	my ($pl, $cmd) = @_;
	my @as;
	if (is_pgb($pl->{kind}) && $RUN_AS) {
		my @pw = getpwnam($RUN_AS);
		@as = (as_user => [ $pw[2], $pw[3] ]);
	}
	my ($rc, $out, $err) = run_child([ 'callgrind_control', $cmd, pooler_pid($pl) ],
		timeout => 60, @as);
	die "callgrind_control $cmd failed: $out $err\n" if $rc;
}

sub callgrind_summary
{
	my ($file) = @_;
	my ($ir) = slurp($file) =~ /^summary:\s+(\d+)/m;
	return $ir;
}

# Own instructions per function in callgrind dump <file>:
# { "file:function [object]" => Ir }.  Parsed here rather than
# with callgrind_annotate, which charges everything to __libc_start_main for
# dumps taken after callgrind_control -z in a long-running event loop.
# Format: fn=/ob=/fl= (and c* variants) name-compress as "(id) name" the
# first time; a cost line right after "calls=" is the call's inclusive cost.
sub callgrind_self
{
	my ($file) = @_;
	open(my $fh, '<', $file) or return {};
	my (%name, %self, %where, $ob, $fl, $fn, $after_calls, $total);
	while (my $l = <$fh>) {
		if ($l =~ /^(c?)(ob|fl|fi|fe|fn)=\((\d+)\)(?: (.*))?$/) {
			my ($called, $kind, $id, $nm) = ($1, $2, $3, $4);
			my $space = $kind =~ /^f[lie]$/ ? 'fl' : $kind;	# file ids are shared
			$name{$space}{$id} = $nm if defined $nm;
			next if $called;
			if ($kind eq 'ob') {
				$ob = $id;
			} elsif ($kind eq 'fn') {
				$fn = $id;
				$where{$fn} //= [ $ob, $fl ];
			} elsif ($kind eq 'fl') {
				$fl = $id;	# fi/fe: inlined code, still <fn>'s own cost
			}
			next;
		}
		if ($l =~ /^calls=/) {
			$after_calls = 1;
			next;
		}
		if ($l =~ /^[+\-*\d]\S*\s+(\d+)/) {
			if ($after_calls) {
				$after_calls = 0;
			} elsif (defined $fn) {
				$self{$fn} += $1;
				$total += $1;
			}
			next;
		}
		$after_calls = 0 if $l =~ /^\S/;
	}
	close $fh;
	my %by;
	for my $id (keys %self) {
		my ($o, $f) = @{ $where{$id} };
		my $file = $name{fl}{ $f // '' } // '???';
		$file =~ s{^.*/}{};
		my $obj = $name{ob}{ $o // '' } // '?';
		$obj =~ s{^.*/}{};
		$by{ ($file eq '???' ? '' : "$file:") . ($name{fn}{$id} // "fn$id") . " [$obj]" }
		    += $self{$id};
	}
	return \%by;
}

# The <n> functions with the most own instructions per transaction between
# dumps <f1> (after <t1> transactions) and <f2> (<t2> more): logins and
# start-up cancel out.  [ [Ir/txn, share %, name], ... ].
sub callgrind_top
{
	my ($f1, $t1, $f2, $t2, $n) = @_;
	my ($s1, $s2) = (callgrind_self($f1), callgrind_self($f2));
	my %d;
	$d{$_} = (($s2->{$_} // 0) - ($s1->{$_} // 0)) / ($t2 - $t1) for keys %$s2;
	my $total = sum(grep { $_ > 0 } values %d) or return [];
	my @top = sort { $d{$b} <=> $d{$a} } keys %d;
	splice(@top, $n) if @top > $n;
	return [ map { [ $d{$_}, 100 * $d{$_} / $total, $_ ] } @top ];
}

# Instructions per transaction of pooler <pl> under callgrind: warm-up, -z,
# -t N1, dump <n>, -t N2, dump <n>+1 (pgbench options <more> added).
sub callgrind_measure
{
	my ($pl, $n, @more) = @_;
	cb_pgbench($pl->{proxy}, 20, @more);	# servers logged in, pool warm
	callgrind_cmd($pl, '-z');
	my $d1 = cb_pgbench($pl->{proxy}, $CB_N1, @more);
	callgrind_cmd($pl, '-d');
	my $d2 = cb_pgbench($pl->{proxy}, $CB_N2, @more);
	callgrind_cmd($pl, '-d');
	my $dir = $pl->{proxy}->basedir;
	my ($f1, $f2) = ("$dir/callgrind.out.$n", "$dir/callgrind.out." . ($n + 1));
	my ($ir1, $ir2) = (callgrind_summary($f1), callgrind_summary($f2));
	die "no callgrind dumps\n" unless $ir1 && $ir2;
	return { ir_txn => ($ir2 - $ir1) / ($d2 - $d1),
		top => callgrind_top($f1, $d1, $f2, $d2, 15), txn1 => $d1, txn2 => $d2 };
}

if (!$opt{'no-callgrind'}) {
	for my $k (@POOLERS) {
		last if time > $T0 + $BUDGET - 25;
		my $pl = eval { pooler_new($k, name => "cg-$k", valgrind => 1) };
		if (!$pl) {
			push @NOTES, "callgrind run of $k failed to start: $@";
			next;
		}
		# -S simple (dumps 1 and 2), then -M prepared (3 and 4) where the pooler has it
		my $ok = eval { $CALLGRIND{$k} = callgrind_measure($pl, 1); 1 };
		push @NOTES, "callgrind run of $k failed: $@" unless $ok;
		# one client (dumps 3 and 4): no wake-up ever finds two transactions'
		# messages, so this figure repeats to about 1 % whatever the load
		$ok &&= eval { $CALLGRIND1{$k} = callgrind_measure($pl, 3, '-c', 1, '-j', 1); 1 };
		push @NOTES, "one-client callgrind run of $k failed: $@" if !$ok && $CALLGRIND{$k};
		if ($ok && $PREP_CG && (!is_pgb($k) || pgb_has_prep($k))) {
			eval { $CALLGRIND_PREP{$k} = callgrind_measure($pl, 5, '-M', 'prepared'); 1 }
			    or push @NOTES, "callgrind -M prepared run of $k failed: $@";
		}
		$pl->{proxy}->stop(timeout => 30);
		if ($CALLGRIND{$k}) {
			progress('callgrind %-13s %s user-space instructions/txn', $k,
				fmt_num($CALLGRIND{$k}{ir_txn}, 0));
		}
		if ($CALLGRIND1{$k}) {
			progress('callgrind %-13s %s user-space instructions/txn with 1 client', $k,
				fmt_num($CALLGRIND1{$k}{ir_txn}, 0));
		}
		if ($CALLGRIND_PREP{$k}) {
			progress('callgrind %-13s %s user-space instructions/txn with -M prepared', $k,
				fmt_num($CALLGRIND_PREP{$k}{ir_txn}, 0));
		}
	}
}

# ---------------------------------------------------------------------------
# Report

my $ELAPSED = time - $T0;
my $LOAD_END = loadavg();
for my $k (sort keys %POOLER) {
	$POOLER{$k}{dbh}->disconnect if $POOLER{$k}{dbh};
	$POOLER{$k}{proxy}->stop;
}
$node->stop;

sub stat3
{
	my (@v) = grep { defined } @_;
	return undef unless @v;
	return [ median(@v), min(@v), max(@v), scalar @v ];
}

sub fmt_stat
{
	my ($s, $d) = @_;
	return '-' unless $s;
	return fmt_num($s->[0], $d) if $s->[3] == 1 || $s->[1] == $s->[2];
	return fmt_num($s->[0], $d) . ' (' . fmt_num($s->[1], $d) . '–' . fmt_num($s->[2], $d) . ')';
}

# Metric <f> of the successful runs of <scen>/<target>.
sub mstat
{
	my ($scen, $t, $f) = @_;
	return stat3(map { $_->{ok} ? $_->{$f} : undef } @{ $RES{$scen}{$t} // [] });
}

# Pair-by-pair ratio a/b of metric <f>: rep i of <a> over rep i of <b>.
sub rstat
{
	my ($scen, $ta, $tb, $f) = @_;
	my @ra = @{ $RES{$scen}{$ta} // [] };
	my @rb = @{ $RES{$scen}{$tb} // [] };
	my @q;
	for my $i (0 .. min($#ra, $#rb)) {
		my ($x, $y) = ($ra[$i], $rb[$i]);
		next unless $x->{ok} && $y->{ok} && defined $x->{$f} && defined $y->{$f} && $y->{$f};
		push @q, $x->{$f} / $y->{$f};
	}
	return stat3(@q);
}

sub failures
{
	my ($scen, $t) = @_;
	my @f = grep { !$_->{ok} } @{ $RES{$scen}{$t} // [] };
	return '' unless @f;
	my %why;
	$why{ $_->{err} // '?' }++ for @f;
	return join('; ', map { "FAIL ×$why{$_}: $_" } sort keys %why);
}

sub cell
{
	my ($scen, $t, $f, $d) = @_;
	my $s = mstat($scen, $t, $f);
	my $fail = failures($scen, $t);
	return $fail if !$s && $fail;
	my $c = fmt_stat($s, $d);
	$c .= ' [' . scalar(grep { !$_->{ok} } @{ $RES{$scen}{$t} }) . ' failed]' if $fail;
	return $c;
}

sub git_rev
{
	my $rev = `git -C '$ROOT' rev-parse --short HEAD 2>/dev/null` // '';
	chomp $rev;
	return 'unknown' if $rev eq '';
	my $dirty = `git -C '$ROOT' status --porcelain --untracked-files=no 2>/dev/null` // '';
	return $rev . ($dirty ne '' ? ' + uncommitted changes' : '');
}

my @R;	# report lines
sub out { push @R, @_ }

my ($cpu_model) = slurp('/proc/cpuinfo') =~ /^model name\s*:\s*(.*)$/m;
my $ncpu = () = slurp('/proc/cpuinfo') =~ /^processor\s*:/mg;
my ($memtotal) = slurp('/proc/meminfo') =~ /^MemTotal:\s+(\d+)/m;
chomp(my $kernel = `uname -r`);
my $pgb_ver = join(', ', map { "PgBouncer $PGB_VER{$_} ($opt{$_}; target $_)" } @PGB_KEYS);
my @loads = map { $_->{load} } grep { defined $_->{load} } @RUNS;

out('# pgslab benchmark: pgslab vs PgBouncer vs direct PostgreSQL', '');
out(sprintf('Generated %s by `make %s` in %.1f min.', POSIX::strftime('%Y-%m-%d %H:%M %Z', localtime),
	$QUICK ? 'bench-quick' : 'bench', $ELAPSED / 60), '');
out(sprintf('- Machine: %d × %s, %.1f GiB RAM, Linux %s. Shared with other jobs: load average '
	. '(1 min) over the runs %s–%s, median %s (a 2-core machine is saturated by pgbench, the '
	. 'pooler and PostgreSQL alone; anything else shows up as noise in time-based figures, '
	. 'not in the count-bounded ones).', $ncpu, $cpu_model // '?', ($memtotal // 0) / 1048576,
	$kernel, @loads ? (fmt_num(min(@loads)), fmt_num(max(@loads)), fmt_num(median(@loads)))
	: ('?', '?', '?')));
out(sprintf('- Versions: pgslab %s; %s; PostgreSQL %s and pgbench 15.', git_rev(),
	$pgb_ver, $PGVER));
out('- Server: one throw-away PostgreSQL 15 on 127.0.0.1: fsync, synchronous_commit and '
	. "full_page_writes off, autovacuum off, shared_buffers 128MB, max_connections 1200 (main shared "
	. "memory $SHMEM, anonymous mmap; dynamic shared memory mmap'd files, not /dev/shm); pgbench scale $SCALE.");
out('- Poolers (identical settings): pool_mode transaction, default_pool_size 20, auth_type '
	. 'scram-sha-256 with the SCRAM verifiers from pg_authid in the userlist, max_client_conn '
	. "$POOL_SETTINGS{max_client_conn}, log_connections/log_disconnections 0; TCP on 127.0.0.1. "
	. 'pgslab-malloc is pgslab built with -DSLAB_BYPASS: every slab cache and size-class buffer '
	. 'is a plain malloc/free. PgBouncer runs as an unprivileged user (it refuses root).');
out("- Method: each scenario runs against pgslab, PgBouncer, direct and pgslab-malloc in turn, $REPS "
	. "time(s) (A B C D A B C D ...), pgbench -n -j 2 -T $DUR as role `bench` (SCRAM, 4096 iterations). "
	. 'TPS from pgbench (without initial connection time); latency average and p99 from the '
	. 'per-transaction log (-l); pooler CPU = utime+stime of the pooler process from /proc/PID/stat '
	. 'over the run; peak RSS = VmHWM after resetting it (clear_refs) before the run; sysalloc = '
	. 'pgslab\'s SHOW MEM row sysalloc_calls (malloc/calloc/realloc/mmap incl. libevent and OpenSSL). '
	. 'Cells: median (min–max); ratios are computed pair by pair (rep i / rep i), then summarized.');
out(sprintf("- fd limit %s.", $NOFILE));
out('');

# Summary table
out('## Summary (medians; ratios pair by pair)', '');
out('| scenario | pgslab TPS | PgBouncer TPS | direct TPS | pgslab/PgBouncer TPS | pgslab/direct TPS '
	. '| pgslab CPU µs/txn | PgBouncer CPU µs/txn | pgslab/PgBouncer CPU | pgslab p99 ms | PgBouncer p99 ms | direct p99 ms |');
out('|' . '---|' x 12);
for my $sc (@SCEN) {
	my $id = $sc->{id};
	my $m = sub {
		my ($t, $f, $d) = @_;
		my $s = mstat($id, $t, $f);
		return $s ? fmt_num($s->[0], $d) : (failures($id, $t) ? 'FAIL' : '-');
	};
	my $rr = sub {
		my $s = rstat($id, @_);
		return $s ? fmt_num($s->[0], 2) : '-';
	};
	out("| $id | " . join(' | ', $m->('pgslab', 'tps', 0), $m->('pgbouncer', 'tps', 0),
		$m->('direct', 'tps', 0), $rr->('pgslab', 'pgbouncer', 'tps'),
		$rr->('pgslab', 'direct', 'tps'), $m->('pgslab', 'cpu_us_txn'),
		$m->('pgbouncer', 'cpu_us_txn'), $rr->('pgslab', 'pgbouncer', 'cpu_us_txn'),
		$m->('pgslab', 'lat_p99'), $m->('pgbouncer', 'lat_p99'), $m->('direct', 'lat_p99')) . ' |');
}
out('');

# Per scenario
out('## Scenarios', '');
my @METRICS = (
	[ 'TPS', 'tps', 0 ],
	[ 'latency avg (ms)', 'lat_avg', undef ],
	[ 'latency p99 (ms)', 'lat_p99', undef ],
	[ 'transactions', 'txns', 0 ],
	[ 'pooler CPU (s)', 'cpu_s', 2 ],
	[ 'pooler CPU µs/txn', 'cpu_us_txn', undef ],
	[ 'kernel share of pooler CPU', 'sys_share', 2 ],
	[ 'pooler peak RSS (kB)', 'hwm_kb', 0 ],
	[ 'sysalloc calls in the run', 'sysalloc', 0 ],
	[ 'sysalloc calls/txn', 'sysalloc_txn', 4 ],
	[ 'load average (1 min)', 'load', 2 ],
);
for my $sc (@SCEN) {
	my $id = $sc->{id};
	out("### $id: $sc->{desc}", '');
	out('| metric | ' . join(' | ', map { $LABEL{$_} } @TARGETS)
		. ' | pgslab/PgBouncer | pgslab/direct |');
	out('|' . '---|' x (@TARGETS + 3));
	for my $m (@METRICS) {
		my ($name, $f, $d) = @$m;
		my @cells = map {
			$_ eq 'direct' && $f !~ /^(tps|lat_avg|lat_p99|txns|load)$/ ? '-'
			    : is_pgb($_) && $f =~ /^sysalloc/ ? 'n/a'
			    : cell($id, $_, $f, $d)
		} @TARGETS;
		next unless grep { $_ ne '-' && $_ ne 'n/a' } @cells;
		my $pb = grep({ $_ eq 'pgbouncer' } @TARGETS) && $f ne 'load'
		    ? fmt_stat(rstat($id, 'pgslab', 'pgbouncer', $f), 2) : '-';
		my $pd = grep({ $_ eq 'direct' } @TARGETS) && $f =~ /^(tps|lat_avg|lat_p99|txns)$/
		    ? fmt_stat(rstat($id, 'pgslab', 'direct', $f), 2) : '-';
		# a failed target's reason is long: print it once, in the TPS row
		@cells = map { /^FAIL/ && $f ne 'tps' ? 'FAIL' : $_ } @cells;
		out("| $name | " . join(' | ', @cells) . " | $pb | $pd |");
	}
	out('');
}

# Idle clients
if (%IDLE) {
	out('## Idle authenticated clients', '');
	out("A fresh instance of each pooler; $IDLE_N clients log in (SCRAM; role `bench_fast` has a "
		. "$opt{'idle-iterations'}-iteration verifier so the client-side key derivation does not "
		. 'dominate the run: the pooler\'s side of a SCRAM login costs the same whatever the '
		. 'iteration count) and stay idle. Bytes per client = (RSS with them − RSS before) / N. '
		. "Then all disconnect; RSS is read 1 s later and $REAP_WAIT s later (pgslab's janitor reaps "
		. 'empty slabs and returns free 4 MiB blocks every 10 s). Sysalloc calls/login here include '
		. 'first-use growth (libevent allocates a map entry for each fd number the first time it is '
		. 'used); the steady state is in the count-bounded table below.', '');
	out('| pooler | logged in | login time (s) | RSS before (kB) | RSS with clients (kB) | bytes/idle client '
		. "| pooler CPU µs/login | sysalloc calls/login | RSS 1 s after disconnect (kB) | RSS ${REAP_WAIT} s after (kB) |");
	out('|' . '---|' x 10);
	for my $k (map { $_->[0] } @IDLE_PASSES) {
		my $r = $IDLE{$k} or next;
		my $lab = $k =~ m{^(.*)/tls$} ? "$LABEL{$1}, TLS clients" : $LABEL{$k};
		out("| $lab | $r->{n}" . ($r->{failed} ? " ($r->{failed} failed: $r->{err})" : '')
			. ' | ' . join(' | ', fmt_num(($r->{ms} // 0) / 1000, 1), fmt_num($r->{rss0}),
			fmt_num($r->{rss1}), fmt_num($r->{bytes_per_client}, 0),
			fmt_num($r->{cpu_us_login}), defined $r->{sysalloc_login}
			    ? fmt_num($r->{sysalloc_login}, 3) : 'n/a',
			fmt_num($r->{rss_after1}), fmt_num($r->{rss_after_reap})) . ' |');
	}
	out('');
	my @mk = grep { $IDLE{$_} && $IDLE{$_}{mem} && $IDLE{$_}{n} && $LABEL{$_} } @POOLERS;
	if (@mk) {
		out('Where the idle clients\' memory sits, from SHOW MEM before and with them (bytes per '
			. 'client = change in the cache\'s memtotal / N; pgslab: whole slabs, free objects '
			. 'included; pgslab-malloc: objects in use × size, without malloc\'s own overhead). '
			. 'Row arena: change in bytes in use (pgslab: slab pages handed out; pgslab-malloc: '
			. 'bytes malloc\'d through the caches). The rest of the RSS change is memory outside '
			. 'the caches (libevent\'s per-fd maps, libc, OpenSSL) and, for pgslab-malloc, '
			. 'malloc\'s headers and fragmentation.', '');
		my %names;
		for my $k (@mk) { $names{ $_->{name} } = 1 for @{ $IDLE{$k}{mem} } }
		out('| cache | ' . join(' | ', map { "$LABEL{$_} objects/client | $LABEL{$_} bytes/client" } @mk)
			. ' |');
		out('|---|' . '---|---|' x @mk);
		for my $n (sort { ($a eq 'arena') <=> ($b eq 'arena') || $a cmp $b } keys %names) {
			out("| $n | " . join(' | ', map {
				my $k = $_;
				my ($d) = grep { $_->{name} eq $n } @{ $IDLE{$k}{mem} };
				my $per = sub { my $v = $_[0] / $IDLE{$k}{n}; abs($v) < 0.005 ? 0 : $v };
				!$d ? '- | -'
				    : $n eq 'arena' ? '- | ' . fmt_num($per->($d->{used}), 0)
				    : fmt_num($per->($d->{used}), 2) . ' | ' . fmt_num($per->($d->{memtotal}), 0);
			} @mk) . ' |');
		}
		out('');
	}
}

# Count-bounded
out('## Count-bounded runs: instructions, system calls and allocator calls per transaction', '');
out("pgbench -S -c $CB_CLIENTS -j 2 -t $CB_N1 and then -t $CB_N2 through the same pooler; "
	. "per-transaction figures are (run 2 − run 1) / ($CB_TXN2 − $CB_TXN1) transactions, so logins, "
	. 'start-up and warm-up cancel out. They depend on the machine\'s load far less than timings do. Instructions: '
	. 'user-space instructions (Ir) of the pooler process under `valgrind --tool=callgrind` '
	. '(callgrind_control -z/-d around the runs); the 1-client column is the same with `-c 1`, '
	. 'where no wake-up finds two transactions\' messages, so it repeats to about 1 % '
	. '(the 10-client figure moves by ±10 % with how messages batch). '
	. 'System calls: `strace -c -f -p PID`.', '');
out('| pooler | instructions/txn | instructions/txn, 1 client | system calls/txn | failed system calls/txn | sysalloc calls/txn | sysalloc calls/login |');
out('|---|---|---|---|---|---|---|');
for my $k (@POOLERS) {
	my ($cg, $st, $sa) = ($CALLGRIND{$k}, $STRACE{$k}, $SA_CB{$k});
	out("| $LABEL{$k} | " . join(' | ',
		$cg ? fmt_num($cg->{ir_txn}, 0) : '-',
		$CALLGRIND1{$k} ? fmt_num($CALLGRIND1{$k}{ir_txn}, 0) : '-',
		$st ? fmt_num($st->{total}, 2) : '-', $st ? fmt_num($st->{errors}, 3) : '-',
		$sa ? fmt_num($sa->{per_txn}, 4) : (is_pgb($k) ? 'n/a' : '-'),
		$sa ? fmt_num($sa->{per_login}, 1) : (is_pgb($k) ? 'n/a' : '-')) . ' |');
}
out('');
if (%STRACE) {
	my %names;
	for my $k (keys %STRACE) {
		$names{$_} = 1 for grep { $_ ne 'total' && $STRACE{$k}{per}{$_}[0] >= 0.01 }
		    keys %{ $STRACE{$k}{per} };
	}
	my $ps = $STRACE{pgslab} ? $STRACE{pgslab}{per} : {};
	my %rank = map { $_ => ($ps->{$_} ? $ps->{$_}[0] : 0) } keys %names;
	my @names = sort { $rank{$b} <=> $rank{$a} || $a cmp $b } keys %names;
	out('System calls per transaction by call (calls / failed, e.g. EAGAIN):', '');
	out('| system call | ' . join(' | ', map { $LABEL{$_} } grep { $STRACE{$_} } @POOLERS) . ' |');
	out('|---|' . '---|' x scalar(grep { $STRACE{$_} } @POOLERS));
	for my $n (@names, 'total') {
		out("| $n | " . join(' | ', map {
			my $v = $STRACE{$_}{per}{$n};
			$v ? sprintf('%.3f%s', $v->[0], $v->[1] > 0 ? sprintf(' / %.3f', $v->[1]) : '') : '-'
		} grep { $STRACE{$_} } @POOLERS) . ' |');
	}
	out('');
}
for my $cgk (map { my $k = $_; map { [ $k, @$_ ] } grep { $_->[1]{$k} }
    [ '', \%CALLGRIND ], [ ' with -M prepared', \%CALLGRIND_PREP ] } @POOLERS) {
	my ($k, $what, $h) = @$cgk;
	my $cg = $h->{$k};
	out("Top functions of $LABEL{$k}$what by own instructions per transaction (callgrind, "
		. "(run 2 − run 1) / ($cg->{txn2} − $cg->{txn1}) transactions)"
		. (is_pgb($k) ? '; a stripped binary (Debian\'s) shows its own functions as addresses' : '')
		. ':', '');
	out('| Ir/txn | share | function |', '|---|---|---|');
	for my $t (@{ $cg->{top} }) {
		my $fn = $t->[2];
		$fn =~ s/\|/\\|/g;
		out(sprintf('| %s | %.1f%% | `%s` |', fmt_num($t->[0], 0), $t->[1], $fn));
	}
	out('');
}

# Seed comparison
out('## The seed\'s comparison: slab caches vs plain malloc (pgslab vs pgslab-malloc)', '');
if (grep({ $_ eq 'pgslab-malloc' } @TARGETS) && grep({ $_ eq 'pgslab' } @TARGETS)) {
	out('Same code; pgslab-malloc sends every slab_alloc/slab_buf_alloc to malloc and every free to '
		. 'free (ratios: pgslab-malloc / pgslab, pair by pair; above 1 means slabs win).', '');
	out('| scenario | CPU µs/txn pgslab | CPU µs/txn malloc | malloc/slab CPU | TPS malloc/slab | peak RSS pgslab (kB) | peak RSS malloc (kB) | sysalloc/txn pgslab | sysalloc/txn malloc |');
	out('|' . '---|' x 9);
	for my $sc (@SCEN) {
		my $id = $sc->{id};
		out("| $id | " . join(' | ', map { /^FAIL/ ? 'FAIL' : $_ } cell($id, 'pgslab', 'cpu_us_txn'),
			cell($id, 'pgslab-malloc', 'cpu_us_txn'),
			fmt_stat(rstat($id, 'pgslab-malloc', 'pgslab', 'cpu_us_txn'), 2),
			fmt_stat(rstat($id, 'pgslab-malloc', 'pgslab', 'tps'), 2),
			cell($id, 'pgslab', 'hwm_kb', 0), cell($id, 'pgslab-malloc', 'hwm_kb', 0),
			cell($id, 'pgslab', 'sysalloc_txn', 4), cell($id, 'pgslab-malloc', 'sysalloc_txn', 4))
			. ' |');
	}
	out('');
	my @l;
	for my $k ('pgslab', 'pgslab-malloc') {
		my $i = $IDLE{$k};
		my $c = $CALLGRIND{$k};
		my $s = $SA_CB{$k};
		push @l, sprintf('- %s: %s instructions/txn, %s sysalloc calls/txn (count-bounded); '
			. '%s bytes per idle client; after %d clients disconnect: RSS %s kB (1 s), %s kB (%d s), '
			. 'from %s kB with them and %s kB before.', $k,
			$c ? fmt_num($c->{ir_txn}, 0) : '-', $s ? fmt_num($s->{per_txn}, 4) : '-',
			$i ? fmt_num($i->{bytes_per_client}, 0) : '-', $i ? $i->{n} : 0,
			$i ? fmt_num($i->{rss_after1}) : '-', $i ? fmt_num($i->{rss_after_reap}) : '-',
			$REAP_WAIT, $i ? fmt_num($i->{rss1}) : '-', $i ? fmt_num($i->{rss0}) : '-');
	}
	out(@l, '');
} else {
	out('(pgslab or pgslab-malloc not among the targets)', '');
}

# Prepared statements and TLS against every PgBouncer (issues 12 and 13)
{
	my @pgb = grep { is_pgb($_) } @TARGETS;
	my @ids = grep { $RES{$_} } qw(S10 PREP10 PREP100 TLS10 TLSB10 TLSC10);
	if (@ids && @pgb) {
		out('## Prepared statements and TLS: pgslab vs ' . join(' vs ', map { $LABEL{$_} } @pgb), '');
		out('Medians of the time-based runs above (ratios pair by pair). A PgBouncer without '
			. 'prepared-statement support shows its failures: FAIL ×runs and pgbench\'s first error.', '');
		out('| scenario | ' . join(' | ', map { "$LABEL{$_} TPS" } 'pgslab', @pgb,
			grep({ $_ eq 'direct' } @TARGETS)) . ' | '
			. join(' | ', map { "pgslab/$LABEL{$_} TPS" } @pgb) . ' | '
			. join(' | ', map { "$LABEL{$_} CPU µs/txn" } 'pgslab', @pgb) . ' | '
			. join(' | ', map { "pgslab/$LABEL{$_} CPU" } @pgb) . ' |');
		my $ncol = 1 + 2 * (1 + @pgb) + grep({ $_ eq 'direct' } @TARGETS) + 2 * @pgb;
		out('|' . '---|' x $ncol);
		for my $id (@ids) {
			my $m = sub {
				my ($t, $f, $d) = @_;
				my $st = mstat($id, $t, $f);
				my $fail = failures($id, $t);
				return $fail if !$st && $fail && $f eq 'tps';
				return $st ? fmt_num($st->[0], $d) . ($fail ? ' [' . scalar(grep { !$_->{ok} }
				    @{ $RES{$id}{$t} }) . ' failed]' : '') : ($fail ? 'FAIL' : '-');
			};
			my $rr = sub { my $st = rstat($id, @_); $st ? fmt_stat($st, 2) : '-' };
			out("| $id | " . join(' | ',
				(map { $m->($_, 'tps', 0) } 'pgslab', @pgb, grep({ $_ eq 'direct' } @TARGETS)),
				(map { $rr->('pgslab', $_, 'tps') } @pgb),
				(map { $m->($_, 'cpu_us_txn') } 'pgslab', @pgb),
				(map { $rr->('pgslab', $_, 'cpu_us_txn') } @pgb)) . ' |');
		}
		out('');
		my @cg = grep { $CALLGRIND{$_} || $CALLGRIND_PREP{$_} } @POOLERS;
		if (@cg) {
			out("Callgrind, user-space instructions per transaction (count-bounded, -c $CB_CLIENTS, "
				. "(run 2 − run 1) / ($CB_TXN2 − $CB_TXN1) transactions):", '');
			out('| pooler | -S simple | -S -M prepared |', '|---|---|---|');
			for my $k (@cg) {
				out("| $LABEL{$k} | " . ($CALLGRIND{$k} ? fmt_num($CALLGRIND{$k}{ir_txn}, 0) : '-')
					. ' | ' . ($CALLGRIND_PREP{$k} ? fmt_num($CALLGRIND_PREP{$k}{ir_txn}, 0)
					: is_pgb($k) && !pgb_has_prep($k) ? 'n/a (no prepared-statement support)' : '-')
					. ' |');
			}
			out('');
		}
		my @it = grep { $IDLE{"$_/tls"} } 'pgslab', @pgb;
		if (@it) {
			out("Memory per idle TLS client ($IDLE_TLS_N clients, sslmode=require, TLS 1.3, "
				. 'RSS delta / N): ' . join('; ', map { sprintf('%s %s bytes', $LABEL{$_},
				fmt_num($IDLE{"$_/tls"}{bytes_per_client}, 0)) } @it) . '.', '');
		}
		out('Goals (issue 12: -M prepared TPS ≥ PgBouncer 1.25\'s, instructions/txn ≤ 0.7× its; '
			. 'issue 13: TLS TPS ≥, CPU/txn ≤, idle memory ≤ PgBouncer\'s), against ' . $LABEL{ $pgb[0] }
			. ':', '');
		out('| goal | measured | verdict |', '|---|---|---|');
		my $b = $pgb[0];
		for my $id (grep { $RES{$_} } qw(PREP10 PREP100 TLS10 TLSB10 TLSC10)) {
			my $q = rstat($id, 'pgslab', $b, 'tps');
			out(sprintf('| %s TPS ≥ %s | pair ratio %s | %s |', $id, $LABEL{$b},
				$q ? fmt_stat($q, 2) : '-', !$q ? 'not measured' : $q->[0] >= 1 ? 'met'
				: sprintf('missed (%.0f%%)', ($q->[0] - 1) * 100)));
			next unless $id =~ /^TLS/;
			$q = rstat($id, 'pgslab', $b, 'cpu_us_txn');
			out(sprintf('| %s CPU/txn ≤ %s | pair ratio %s | %s |', $id, $LABEL{$b},
				$q ? fmt_stat($q, 2) : '-', !$q ? 'not measured' : $q->[0] <= 1 ? 'met'
				: sprintf('missed (%+.0f%%)', ($q->[0] - 1) * 100)));
		}
		if ($CALLGRIND_PREP{pgslab} && $CALLGRIND_PREP{$b}) {
			my $q = $CALLGRIND_PREP{pgslab}{ir_txn} / $CALLGRIND_PREP{$b}{ir_txn};
			out(sprintf('| -M prepared instructions/txn ≤ 0.7 × %s | %s vs %s = %.2f× | %s |', $LABEL{$b},
				fmt_num($CALLGRIND_PREP{pgslab}{ir_txn}, 0), fmt_num($CALLGRIND_PREP{$b}{ir_txn}, 0), $q,
				$q <= 0.7 ? 'met' : 'missed'));
		}
		if ($IDLE{'pgslab/tls'} && $IDLE{"$b/tls"}) {
			my ($x, $y) = ($IDLE{'pgslab/tls'}{bytes_per_client}, $IDLE{"$b/tls"}{bytes_per_client});
			out(sprintf('| idle TLS client memory ≤ %s | %s vs %s bytes | %s |', $LABEL{$b},
				fmt_num($x, 0), fmt_num($y, 0), defined $x && defined $y && $x <= $y ? 'met' : 'missed'));
		}
		out('');
	}
}

# Goals
out('## Goals of issue 7 (measured here, never asserted)', '');
out('| goal | measured | verdict |', '|---|---|---|');
{
	my ($cs, $cb) = ($CALLGRIND{pgslab}, $CALLGRIND{pgbouncer});
	if ($cs && $cb) {
		my $q = $cs->{ir_txn} / $cb->{ir_txn};
		out(sprintf('| user-space instructions/txn ≤ 0.5 × PgBouncer\'s | %s vs %s = %.2f× | %s |',
			fmt_num($cs->{ir_txn}, 0), fmt_num($cb->{ir_txn}, 0), $q,
			$q <= 0.5 ? 'met' : sprintf('missed by %.0f%% (%s instructions/txn too many)',
			    ($q / 0.5 - 1) * 100, fmt_num($cs->{ir_txn} - 0.5 * $cb->{ir_txn}, 0))));
	}
	my ($ss, $sb) = ($STRACE{pgslab}, $STRACE{pgbouncer});
	if ($ss && $sb) {
		out(sprintf('| system calls/txn ≤ PgBouncer\'s (floor 4) | %.2f vs %.2f (failed: %.3f vs %.3f) | %s |',
			$ss->{total}, $sb->{total}, $ss->{errors}, $sb->{errors},
			$ss->{total} <= $sb->{total} ? 'met'
			    : sprintf('missed by %.2f calls/txn', $ss->{total} - $sb->{total})));
	}
	for my $id (grep { $RES{$_} } 'S10', 'S100') {
		my $q = rstat($id, 'pgslab', 'pgbouncer', 'cpu_us_txn') or next;
		out(sprintf('| pooler CPU per -S txn ≤ 0.9 × PgBouncer\'s (%s) | %s µs vs %s µs; pair ratio %s | %s |',
			$id, fmt_num(mstat($id, 'pgslab', 'cpu_us_txn')->[0]),
			fmt_num(mstat($id, 'pgbouncer', 'cpu_us_txn')->[0]), fmt_stat($q, 2),
			$q->[0] <= 0.9 ? 'met' : sprintf('missed: %.2f× (%.0f%% over the goal)', $q->[0],
			    ($q->[0] / 0.9 - 1) * 100)));
	}
	if ($RES{S1000}) {
		my $qt = rstat('S1000', 'pgslab', 'pgbouncer', 'tps');
		my $ql = rstat('S1000', 'pgslab', 'pgbouncer', 'lat_p99');
		if ($qt && $ql) {
			out(sprintf('| TPS and p99 at 1000 clients ≥ PgBouncer\'s | TPS ratio %s, p99 ratio %s | %s |',
				fmt_stat($qt, 2), fmt_stat($ql, 2),
				$qt->[0] >= 1 && $ql->[0] <= 1 ? 'met'
				    : sprintf('missed (TPS %.0f%%, p99 %+.0f%%)', ($qt->[0] - 1) * 100,
					($ql->[0] - 1) * 100)));
		} else {
			out('| TPS and p99 at 1000 clients ≥ PgBouncer\'s | ' . (failures('S1000', 'pgslab') || 'no data')
				. ' | not measured |');
		}
	}
	if (my $i = $IDLE{pgslab}) {
		my $b = $i->{bytes_per_client};
		out(sprintf('| ≤ 400 bytes per idle client | %s bytes (PgBouncer %s) | %s |', fmt_num($b, 0),
			$IDLE{pgbouncer} ? fmt_num($IDLE{pgbouncer}{bytes_per_client}, 0) : '-',
			defined $b && $b <= 400 ? 'met' : sprintf('missed by %s bytes', fmt_num(($b // 0) - 400, 0))));
	}
	if (my $s = $SA_CB{pgslab}) {
		out(sprintf('| zero system-allocator calls per transaction | %.4f per txn (%d calls over %d txn, %d over %d) | %s |',
			$s->{per_txn}, $s->{run1}, $s->{txn1}, $s->{run2}, $s->{txn2},
			$s->{run2} - $s->{run1} <= 0 ? 'met' : 'missed'));
	}
}
out('');

if (@NOTES) {
	out('## Notes', '');
	out(map { "- $_" } @NOTES);
	out('');
}
out('Raw per-run data: runs.csv. Chart: chart.png (TPS and pooler CPU per transaction by scenario, '
	. 'medians with min–max bars, log scale).');

make_path($opt{out});
my $report = join("\n", @R) . "\n";
{
	open(my $fh, '>', "$opt{out}/report.md") or die "$opt{out}/report.md: $!";
	print $fh $report;
	close $fh;
}
{
	my @f = qw(scen target rep ok tps txns lat_avg lat_p99 cpu_s cpu_user cpu_sys cpu_us_txn hwm_kb
		rss_kb sysalloc sysalloc_txn load wall err);
	open(my $fh, '>', "$opt{out}/runs.csv") or die "$opt{out}/runs.csv: $!";
	print $fh join(',', @f), "\n";
	for my $r (@RUNS) {
		print $fh join(',', map {
			my $v = $r->{$_} // '';
			$v =~ s/"/""/g;
			$v =~ /[,"\n]/ ? qq{"$v"} : $v;
		} @f), "\n";
	}
	close $fh;
}

# Chart: two panels of clustered bars (median, min–max error bars).
sub chart
{
	my $dat = "$TMP/chart.dat";
	open(my $fh, '>', $dat) or die "$dat: $!";
	for my $sc (@SCEN) {
		my @row = ($sc->{id});
		for my $t (qw(pgslab pgbouncer direct pgslab-malloc)) {
			my $s = mstat($sc->{id}, $t, 'tps');
			push @row, $s ? @$s[0 .. 2] : ('NaN') x 3;
		}
		for my $t (qw(pgslab pgbouncer pgslab-malloc)) {
			my $s = mstat($sc->{id}, $t, 'cpu_us_txn');
			push @row, $s ? @$s[0 .. 2] : ('NaN') x 3;
		}
		print $fh join(' ', @row), "\n";
	}
	close $fh;
	# a target whose every run of a scenario failed gets a label (in the CPU
	# panel, where a failed scenario has no bars to hide it), not a bar
	my @labels;
	for my $i (0 .. $#SCEN) {
		my @f = grep {
			my $runs = $RES{ $SCEN[$i]{id} }{$_} // [];
			@$runs && !grep { $_->{ok} } @$runs
		} @ALL_TARGETS;
		push @labels, sprintf('set label %d "failed:\\n%s" at %d, graph 0.5 center font ",9"',
			$i + 1, join('\\n', map { $LABEL{$_} } @f), $i) if @f;
	}
	my $labels = join("\n", @labels);
	my $gp = "$TMP/chart.gp";
	open($fh, '>', $gp) or die "$gp: $!";
	print $fh <<"EOG";
set terminal pngcairo size 1200,900 font "sans,10"
set output '$opt{out}/chart.png'
set datafile missing 'NaN'
set multiplot layout 2,1 title "pgslab vs $LABEL{pgbouncer} vs direct PostgreSQL 15 (median of $REPS, bars: min-max)"
set style data histograms
set style histogram errorbars gap 2 lw 1
set style fill solid 0.75 border -1
set boxwidth 0.9
set xrange [-0.6:$#SCEN + 0.6]
set logscale y
set grid ytics
set key outside right top
set ylabel "transactions per second"
plot '$dat' using 2:3:4:xtic(1) title 'pgslab' lc rgb '#1f77b4', \\
     '' using 5:6:7 title 'PgBouncer' lc rgb '#ff7f0e', \\
     '' using 8:9:10 title 'direct' lc rgb '#2ca02c', \\
     '' using 11:12:13 title 'pgslab-malloc' lc rgb '#9467bd'
set ylabel "pooler CPU microseconds per transaction"
$labels
plot '$dat' using 14:15:16:xtic(1) title 'pgslab' lc rgb '#1f77b4', \\
     '' using 17:18:19 title 'PgBouncer' lc rgb '#ff7f0e', \\
     '' using 20:21:22 title 'pgslab-malloc' lc rgb '#9467bd'
unset multiplot
EOG
	close $fh;
	my ($rc, $out, $err) = run_child([ 'gnuplot', $gp ], timeout => 60);
	warn "gnuplot failed: $err\n" if $rc;
	return !$rc;
}
my $chart_ok = eval { chart() };
warn "chart: $@" if $@;

print "\n", $report;
progress('report: %s/report.md, runs.csv%s; %.1f min', $opt{out},
	$chart_ok ? ', chart.png' : ' (no chart)', (time - $T0) / 60);
exit 0;
