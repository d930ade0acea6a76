#!/usr/bin/perl
# docker_test.pl -- make docker-test: build docker/Dockerfile with podman and
# run the image's pgslab against a throw-away PostgreSQL 15 on this host,
# without a Docker engine or a registry.
#
#  1. A Debian 12 base: debootstrap --variant=minbase bookworm, kept as a
#     tarball in $PGSLAB_DOCKER_CACHE (default ~/.cache/pgslab-docker) and
#     reused by later runs; podman import'ed as debian:12-slim when no image
#     of that name exists.
#  2. podman build --isolation chroot --network host --format docker (Docker
#     format keeps HEALTHCHECK) -f docker/Dockerfile.
#  3. buildah from the image, then buildah run --isolation chroot --network
#     host of the image's own ENTRYPOINT + CMD (tini -> pgslab) with a config
#     directory mounted at /etc/pgslab: docker/pgslab.ini with the database
#     host, ports and listen address pointed at this host's loopback, and
#     docker/userlist.txt as it is.  The PostgreSQL cluster runs
#     docker/initdb/10-app.sql, as the compose file's postgres service does,
#     so the SCRAM verifiers in the userlist are the tested ones.
#  4. Checks: the image's HEALTHCHECK command, pgbench -i and a short pgbench
#     through pgslab as "app", the admin console as "admin", /metrics, logs on
#     stderr, SIGHUP reload and SIGINT shutdown through tini, then a second
#     start stopped with SIGTERM.
#  5. docker/docker-compose.yml: podman-compose --dry-run parses it, and its
#     services, ports and mounts are checked against the files above.
#  6. Clean-up: the working container, the built image and (if this run
#     imported it) the debian:12-slim image.  The base tarball stays cached.
#
# Must run as root (podman/buildah with chroot isolation, debootstrap).
use strict;
use warnings;
use FindBin;
use lib "$FindBin::Bin/perl";
use Cwd qw(abs_path);
use File::Path qw(remove_tree make_path);
use IO::Socket::INET;
use JSON::PP;
use POSIX ();
use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster qw(get_free_port port_is_listening);

my $t0    = time;
my $root  = abs_path("$FindBin::Bin/..");
my $cache = $ENV{PGSLAB_DOCKER_CACHE} // (($ENV{HOME} // '/root') . '/.cache/pgslab-docker');
my $mirror = $ENV{DEBIAN_MIRROR} // 'http://deb.debian.org/debian';
my $base  = 'localhost/debian:12-slim';
my $image = "localhost/pgslab-docker-test:$$";
my ($ctr, $imported_base, $built, $run_pid, $cfgdir);

die "make docker-test must run as root (podman/buildah chroot isolation, debootstrap)\n"
    if $> != 0;

sub step { diag(sprintf('[%5.1fs] %s', time - $t0, $_[0])) }

# Run a command, die with its output on failure; return stdout.
sub sh
{
	my (@argv) = @_;
	my %o = ref $argv[-1] eq 'HASH' ? %{ pop @argv } : ();
	my ($rc, $out, $err) = PgSlab::Test::Cluster::run_command(\@argv,
		timeout => $o{timeout} // 900, env => $o{env}, cwd => $o{cwd});
	return ($rc, $out, $err) if $o{may_fail};
	die "command failed (exit $rc): @argv\n$out\n$err\n" if $rc;
	return $out;
}

sub cleanup
{
	if ($run_pid) {
		kill 'KILL', $run_pid;
		waitpid($run_pid, 0);
		$run_pid = undef;
	}
	sh('buildah', 'rm', $ctr, { may_fail => 1 }) if $ctr;
	$ctr = undef;
	sh('podman', 'rmi', '-f', $image, { may_fail => 1 }) if $built;
	$built = 0;
	sh('podman', 'rmi', $base, { may_fail => 1 }) if $imported_base;
	$imported_base = 0;
	remove_tree($cfgdir) if $cfgdir && !$ENV{PGSLAB_KEEP_TMP};
	$cfgdir = undef;
}
push @PgSlab::Test::Cluster::TEARDOWN_HOOKS, \&cleanup;
END { cleanup() }

for my $tool (qw(podman buildah debootstrap podman-compose python3)) {
	my ($rc) = sh('sh', '-c', "command -v $tool", { may_fail => 1 });
	die "make docker-test needs $tool (apt-get install podman buildah debootstrap "
	    . "podman-compose python3-yaml)\n" if $rc;
}

# ---- 1. the Debian 12 base image -------------------------------------
my $tarball = "$cache/bookworm-minbase.tar";
if (-s $tarball) {
	step("reusing the cached base system $tarball");
} else {
	step("debootstrap --variant=minbase bookworm into $cache (cached for later runs)");
	make_path($cache);
	my $dir = "$cache/rootfs.$$";
	remove_tree($dir);
	sh('debootstrap', '--variant=minbase', 'bookworm', $dir, $mirror);
	# as in Docker's debian images: no downloaded .debs or package lists
	sh('sh', '-c', "rm -rf '$dir'/var/cache/apt/archives/*.deb '$dir'/var/cache/apt/*.bin "
	    . "'$dir'/var/lib/apt/lists/*_*");
	sh('tar', '-C', $dir, '--numeric-owner', '-cf', "$tarball.$$", '.');
	rename("$tarball.$$", $tarball) or die "rename: $!";
	remove_tree($dir);
}
my ($have_base) = sh('podman', 'image', 'exists', $base, { may_fail => 1 });
if ($have_base != 0) {
	step("podman import as $base");
	sh('podman', 'import', $tarball, $base);
	$imported_base = 1;
}
pass('Debian 12 base image available as debian:12-slim');

# ---- 2. the image -----------------------------------------------------
step('podman build --isolation chroot --network host -f docker/Dockerfile');
my $tb = time;
$built = 1;
my ($rc, $out, $err) = sh('podman', 'build', '--isolation', 'chroot', '--network', 'host',
	'--format', 'docker', '--pull=never', '--layers=false', '-f', 'docker/Dockerfile',
	'-t', $image, '.', { cwd => $root, may_fail => 1, timeout => 1800 });
is($rc, 0, sprintf('podman build of docker/Dockerfile (%.0f s)', time - $tb))
    or BAIL_OUT("build failed:\n" . join("\n", (split /\n/, "$out\n$err")[-30 .. -1]));
my $cfg = decode_json(sh('podman', 'image', 'inspect', '--format', '{{json .Config}}', $image));
my $hc = decode_json(sh('podman', 'image', 'inspect', '--format', '{{json .HealthCheck}}',
	$image));
is($cfg->{User}, 'pgslab', 'image runs as the unprivileged user pgslab');
is_deeply($cfg->{Entrypoint}, [ '/usr/bin/tini', '--', '/usr/local/bin/pgslab' ],
	'entrypoint: tini, then pgslab');
is_deeply($cfg->{Cmd}, ['/etc/pgslab/pgslab.ini'], 'default command: the mounted ini');
is($cfg->{StopSignal}, 'SIGINT', 'stop signal SIGINT');
ok($hc && ref $hc->{Test} eq 'ARRAY' && $hc->{Test}[0] eq 'CMD', 'image has a HEALTHCHECK')
    or diag(explain($hc));
my $size = sh('podman', 'image', 'inspect', '--format', '{{.Size}}', $image);
step(sprintf('image size %.1f MB', $size / 1e6));

# ---- 3. PostgreSQL on the host, pgslab in the container ----------------
step('throw-away PostgreSQL 15 with docker/initdb/10-app.sql');
my $node = PgSlab::Test::Cluster->new(name => 'docker');
$node->start;
$node->safe_psql('postgres', scalar PgSlab::Test::Cluster::_slurp("$root/docker/initdb/10-app.sql"));
$node->safe_psql('app', 'GRANT ALL ON SCHEMA public TO app');
my $cport = $node->port;
my $port  = get_free_port();
my $mport = get_free_port();

# The container's /etc/pgslab: compose's files, pointed at this host.
$cfgdir = PgSlab::Test::Cluster::make_temp_dir('pgslab_docker_cfg');
chmod 0755, $cfgdir;
my $ini = PgSlab::Test::Cluster::_slurp("$root/docker/pgslab.ini");
$ini =~ s/host=postgres port=5432/host=127.0.0.1 port=$cport/ or die "no host=postgres in ini";
$ini =~ s/^listen_addr = .*$/listen_addr = 127.0.0.1/m or die;
$ini =~ s/^listen_port = .*$/listen_port = $port/m or die;
$ini =~ s/^metrics_listen = .*$/metrics_listen = 127.0.0.1:$mport/m or die;
sub write_cfg
{
	my ($text) = @_;
	PgSlab::Test::Cluster::_write_file("$cfgdir/pgslab.ini", $text);
	chmod 0644, "$cfgdir/pgslab.ini";
}
write_cfg($ini);
system('cp', "$root/docker/userlist.txt", "$cfgdir/userlist.txt") == 0 or die;
chmod 0644, "$cfgdir/userlist.txt";

$ctr = sh('buildah', 'from', '--pull-never', '--name', "pgslab-docker-test-$$", $image);
my @run = ('buildah', 'run', '--isolation', 'chroot', '--network', 'host',
	'-v', "$cfgdir:/etc/pgslab:ro");
my $outfile = "$cfgdir/container.out";

# Start ENTRYPOINT + CMD of the image in the container, wait for the port.
# Under buildah's chroot isolation tini is not PID 1, so it is told to be a
# subreaper (what PID 1 would be) to keep its start-up warning quiet.
sub start_container
{
	truncate($outfile, 0) if -e $outfile;
	$run_pid = PgSlab::Test::Cluster::spawn_command(
		[ @run, '--env', 'TINI_SUBREAPER=1', $ctr, '--', @{ $cfg->{Entrypoint} },
		    @{ $cfg->{Cmd} } ],
		stdout_file => $outfile, stderr_file => $outfile);
	my $deadline = time + 30;
	until (port_is_listening('127.0.0.1', $port)) {
		die "pgslab in the container did not start:\n" . container_log()
		    if time > $deadline || waitpid($run_pid, POSIX::WNOHANG()) == $run_pid;
		sleep 0.1;
	}
}
sub container_log { PgSlab::Test::Cluster::_slurp($outfile) }

# tini's pid on the host (buildah's chroot isolation shares the PID namespace).
sub tini_pid
{
	for my $p (glob '/proc/[0-9]*') {
		my $cmd = PgSlab::Test::Cluster::_slurp("$p/cmdline");
		return (split m{/}, $p)[-1] if $cmd =~ m{^/usr/bin/tini\0} && $cmd =~ m{/etc/pgslab/pgslab\.ini};
	}
	return undef;
}

sub wait_exit
{
	my ($timeout) = @_;
	my $st = PgSlab::Test::Cluster::wait_pid($run_pid, $timeout);
	$run_pid = undef if defined $st;
	return $st;
}

step("buildah run: tini -> pgslab on 127.0.0.1:$port");
start_container();
pass("pgslab from the image listens on $port");
my $tpid = tini_pid();
ok($tpid, "tini runs (pid " . ($tpid // '?') . ')');
my $ppid = $tpid && PgSlab::Test::Cluster::_slurp("/proc/$tpid/task/$tpid/children");
$ppid =~ s/\s.*//s if $ppid;
my ($uid) = $ppid ? PgSlab::Test::Cluster::_slurp("/proc/$ppid/status") =~ /^Uid:\s+(\d+)/m : ();
is($uid, 6432, 'pgslab runs as uid 6432, not root');

($rc, $out, $err) = sh(@run, '--env', "PGSLAB_PORT=$port", $ctr, '--', @{ $hc->{Test} }[1 .. $#{ $hc->{Test} }],
	{ may_fail => 1, timeout => 30 });
is($rc, 0, 'HEALTHCHECK command reports healthy') or diag("$out\n$err");
($rc) = sh(@run, '--env', "PGSLAB_PORT=$mport", $ctr, '--', @{ $hc->{Test} }[1 .. $#{ $hc->{Test} }],
	{ may_fail => 1, timeout => 30 });
isnt($rc, 0, 'HEALTHCHECK fails against a port that is not pgslab');

step('pgbench through pgslab (SCRAM verifier in the userlist, password from the client)');
my %app = (env => { PGUSER => 'app', PGPASSWORD => 'app_password', PGDATABASE => 'app' },
	timeout => 300);
($rc, $out, $err) = PgSlab::Test::Cluster::_pgbench_common('127.0.0.1', $port,
	'-i', '-s', '1', { %app });
is($rc, 0, 'pgbench -i -s 1 through pgslab') or diag($err);
($rc, $out, $err) = PgSlab::Test::Cluster::_pgbench_common('127.0.0.1', $port,
	'-n', '-c', '10', '-j', '2', '-T', '5', { %app });
is($rc, 0, 'pgbench -c 10 -T 5 through pgslab') or diag($err);
my ($tps) = $out =~ /tps = ([\d.]+)/;
ok(($tps // 0) > 0, 'pgbench reports transactions') and step("pgbench: $tps tps");

my %admin = (host => '127.0.0.1', port => $port, db => 'pgslab', user => 'admin',
	password => 'admin_password', default_user => 'admin');
($rc, $out, $err) = PgSlab::Test::Cluster::_psql_common(%admin, sql => 'SHOW VERSION');
is($rc, 0, 'admin console login with a SCRAM verifier') or diag($err);
like($out, qr/pgslab/i, 'console: SHOW VERSION');
($rc, $out, $err) = PgSlab::Test::Cluster::_psql_common(%admin, sql => 'SHOW POOLS');
like($out, qr/^app\|app\|/m, 'console: SHOW POOLS lists app/app') or diag("$out\n$err");

my $http = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $mport, Timeout => 5);
my $resp = '';
if ($http) {
	print $http "GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n";
	local $/;
	$resp = <$http> // '';
}
like($resp, qr{^HTTP/1\.[01] 200}, '/metrics answers 200');
like($resp, qr/^pgslab_\w+/m, '/metrics has pgslab_ series');
like(container_log(), qr/listening on port $port/, 'pgslab logs to stderr by default');

step('SIGHUP through tini reloads the mounted ini');
(my $ini2 = $ini) =~ s/^default_pool_size = .*$/default_pool_size = 7/m or die;
write_cfg($ini2);
kill 'HUP', $tpid;
my $ok = 0;
for (1 .. 50) {
	($rc, $out) = PgSlab::Test::Cluster::_psql_common(%admin, sql => 'SHOW CONFIG');
	if ($out =~ /^default_pool_size\|7\|/m) { $ok = 1; last }
	sleep 0.1;
}
ok($ok, 'SIGHUP: default_pool_size 20 -> 7 in SHOW CONFIG');
like(container_log(), qr/configuration reloaded/, 'reload logged');

step('SIGINT (the image STOPSIGNAL) through tini');
kill 'INT', $tpid;
my $st = wait_exit(15);
ok(defined $st, 'SIGINT: container exits');
is($st, 0, 'SIGINT: exit status 0');
like(container_log(), qr/shutting down/, 'SIGINT: clean shutdown logged');

step('second start, stopped with SIGTERM');
start_container();
$tpid = tini_pid();
kill 'TERM', $tpid;
$st = wait_exit(15);
ok(defined $st && $st == 0, 'SIGTERM: container exits with status 0');
like(container_log(), qr/shutdown requested \(wait for clients\)/, 'SIGTERM: shutdown logged');

$node->stop;

# ---- 5. the compose file ----------------------------------------------
step('docker/docker-compose.yml');
($rc, $out, $err) = sh('podman-compose', '--dry-run', '-f', 'docker/docker-compose.yml',
	'up', '--no-build', { cwd => $root, may_fail => 1, timeout => 60 });
is($rc, 0, 'podman-compose --dry-run parses docker-compose.yml') or diag($err);
my $y = decode_json(sh('python3', '-c',
	'import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)',
	"$root/docker/docker-compose.yml"));
my $s = $y->{services} // {};
is_deeply([ sort keys %$s ], [qw(pgbench pgslab postgres)], 'compose services');
like($s->{postgres}{image} // '', qr/postgres:15/, 'compose: PostgreSQL 15');
like($s->{postgres}{environment}{POSTGRES_INITDB_ARGS} // '', qr/auth-host=scram-sha-256/,
	'compose: PostgreSQL with SCRAM');
is($s->{pgslab}{build}{dockerfile}, 'docker/Dockerfile', 'compose builds docker/Dockerfile');
is_deeply([ sort @{ $s->{pgslab}{ports} } ], [ '6432:6432', '9127:9127' ],
	'compose publishes the console/client port and /metrics');
for my $v (@{ $s->{pgslab}{volumes} }, @{ $s->{postgres}{volumes} }) {
	my ($src) = split /:/, $v;
	ok(-e "$root/docker/$src", "compose mount $src exists");
}
my $ul = PgSlab::Test::Cluster::_slurp("$root/docker/userlist.txt");
my @secrets = $ul =~ /^"[^"]+" "([^"]*)"/mg;
ok(@secrets && !grep({ !/^SCRAM-SHA-256\$/ } @secrets),
	'docker/userlist.txt holds SCRAM verifiers only');
like(PgSlab::Test::Cluster::_slurp("$root/docker/docker-compose.yml"), qr/^# TLS variant/m,
	'compose has the TLS note');
is($s->{pgbench}{restart}, 'no', 'pgbench is one-shot');

my $readme = PgSlab::Test::Cluster::_slurp("$root/README.md");
my ($deploying) = $readme =~ /^## Deploying\n(.*?)^## /ms;
for my $cmd ('podman build --format docker -f docker/Dockerfile -t pgslab .',
    '-v $PWD/docker/userlist.txt:/etc/pgslab/userlist.txt:ro pgslab',
    'docker compose -f docker/docker-compose.yml up --build',
    "psql -h localhost -p 6432 -U app app                        # password app_password",
    "psql -h localhost -p 6432 -U admin pgslab -c 'SHOW POOLS'   # password admin_password",
    'curl -s http://localhost:9127/metrics') {
	ok(index($deploying // '', $cmd) >= 0, "README Deploying: $cmd");
}

cleanup();
my $left = sh('podman', 'images', '--noheading', '--filter', "reference=$image");
is($left, '', 'built image removed');
step(sprintf('make docker-test done in %.0f s', time - $t0));
done_testing();
