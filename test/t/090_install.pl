# 090_install.pl -- make install / uninstall into a DESTDIR, then the installed pgslab:
# -V, man pages, a query through it against a test cluster, the systemd unit and the
# sd_notify protocol it relies on (READY=1 when listening, STOPPING=1 on shutdown).
#
# These are the commands of README's "Deploying" section (from source, systemd).

use strict;
use warnings;

use Cwd qw(abs_path);
use FindBin;
use IO::Select;
use IO::Socket::UNIX;
use Socket qw(SOCK_DGRAM);
use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $root = abs_path("$FindBin::Bin/../..");
my $tmp  = PgSlab::Test::Cluster::make_temp_dir('pgslab_install');
my $dest = "$tmp/dest";
END { File::Path::remove_tree($tmp) if $tmp && !$ENV{PGSLAB_KEEP_TMP} }
require File::Path;

# make in the checkout, without the calling make's jobserver and flags.
my %make_env = (MAKEFLAGS => undef, MAKELEVEL => undef, MFLAGS => undef);
sub run_make
{
	my (@args) = @_;
	return PgSlab::Test::Cluster::run_command([ 'make', '-s', '--no-print-directory', @args ],
		cwd => $root, env => \%make_env, timeout => 600);
}
sub have { system("command -v $_[0] >/dev/null 2>&1") == 0 }

# ---- make install DESTDIR=... PREFIX=/usr -------------------------------
my ($rc, $out, $err) = run_make('install', "DESTDIR=$dest", 'PREFIX=/usr');
is($rc, 0, 'make install DESTDIR=... PREFIX=/usr') or diag("$out\n$err");

my %want = (
	'usr/bin/pgslab'                        => 0755,
	'usr/share/man/man1/pgslab.1'           => 0644,
	'usr/share/man/man5/pgslab.ini.5'       => 0644,
	'usr/share/doc/pgslab/pgslab.ini'       => 0644,
	'usr/share/doc/pgslab/userlist.txt'     => 0644,
	'usr/share/doc/pgslab/README.md'        => 0644,
	'usr/share/doc/pgslab/pgslab.service'   => 0644,
	'usr/lib/systemd/system/pgslab.service' => 0644,
	'usr/lib/sysusers.d/pgslab.conf'        => 0644,
);
for my $f (sort keys %want) {
	my @st = stat("$dest/$f");
	ok(@st, "installed $f") or next;
	is(sprintf('%04o', $st[2] & 07777), sprintf('%04o', $want{$f}), "mode of $f");
}
my @all = split /\n/, `cd '$dest' && find . -type f | sort`;
is(scalar @all, scalar keys %want, 'nothing else installed') or diag(join("\n", @all));

# ---- the installed binary ----------------------------------------------
my $bin = "$dest/usr/bin/pgslab";
my ($version) = PgSlab::Test::Cluster::_slurp("$root/include/proxy.h")
    =~ /#define PGSLAB_VERSION "([^"]+)"/;
($rc, $out) = PgSlab::Test::Cluster::run_command([ $bin, '-V' ]);
is($rc, 0, 'installed pgslab -V exits 0');
is($out, "pgslab $version", "installed pgslab -V prints pgslab $version");

# ---- man pages -----------------------------------------------------------
for my $m ([ 'man1/pgslab.1', 'PGSLAB', 1, qr/^SIGNALS$/m ],
    [ 'man5/pgslab.ini.5', 'PGSLAB.INI', 5, qr/^\s+metrics_listen$/m ]) {
	my ($path, $title, $sec, $re) = @$m;
	my $src = PgSlab::Test::Cluster::_slurp("$dest/usr/share/man/$path");
	like($src, qr/^\.TH "\Q$title\E" "$sec"/m, "$path has a .TH header");
	SKIP: {
		skip 'groff not installed', 2 unless have('groff');
		($rc, $out, $err) = PgSlab::Test::Cluster::run_command(
			[ 'groff', '-man', '-Tutf8', '-P-cbou', '-ww', "$dest/usr/share/man/$path" ],
			env => { LC_ALL => 'C.UTF-8', MANWIDTH => 80 });
		is($err, '', "$path renders without groff warnings");
		like($out, $re, "$path renders its content");
	}
}

# ---- a query through the installed binary, notifying like systemd --------
my $node = PgSlab::Test::Cluster->new(name => 'c090');
$node->start;
$node->create_user('app', 'app_pw');
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p090',
	binary   => $bin,
	settings => { pool_mode => 'transaction' },
	userlist => userlist_from_cluster($node, 'app'));

my $nsock = "$tmp/notify.sock";
my $listener = IO::Socket::UNIX->new(Type => SOCK_DGRAM, Local => $nsock)
    or die "notify socket: $!";
sub notification
{
	my ($timeout) = @_;
	return undef unless IO::Select->new($listener)->can_read($timeout);
	my $msg;
	$listener->recv($msg, 4096);
	return $msg;
}
{
	local $ENV{NOTIFY_SOCKET} = $nsock;
	$proxy->start;
}
is(notification(5), 'READY=1', 'READY=1 on $NOTIFY_SOCKET once listening (Type=notify)');
is($proxy->safe_psql('postgres', 'SELECT 40 + 2', user => 'app', password => 'app_pw'), '42',
	'a query through the installed pgslab');
my ($ver_row) = $proxy->admin('SHOW VERSION');
like($ver_row->[0] // '', qr/\Q$version\E/, 'admin console of the installed pgslab');

# ExecReload=/bin/kill -HUP $MAINPID
$proxy->set(default_pool_size => 9);
$proxy->reload;
$proxy->wait_for_log(qr/configuration reloaded/);
my ($dps) = grep { $_->{key} eq 'default_pool_size' } $proxy->admin_hash('SHOW CONFIG');
is($dps && $dps->{value}, '9', 'SIGHUP reloads the config');
my $n = notification(0.5);
ok(!defined $n || $n =~ /^(RELOADING=1\nMONOTONIC_USEC=\d+|READY=1)$/s,
	'reload sends nothing or RELOADING=1/READY=1') or diag($n);
notification(0.5) if defined $n && $n =~ /^RELOADING/;

# KillSignal=SIGINT
is($proxy->stop, 0, 'SIGINT: installed pgslab exits 0');
is(notification(5), 'STOPPING=1', 'STOPPING=1 on shutdown');
close $listener;

# ---- the systemd unit ----------------------------------------------------
my $unit = PgSlab::Test::Cluster::_slurp("$dest/usr/lib/systemd/system/pgslab.service");
like($unit, qr{^ExecStart=/usr/bin/pgslab /etc/pgslab/pgslab\.ini$}m,
	'unit runs the installed binary (PREFIX substituted)');
for my $line ('Type=notify', 'ExecReload=/bin/kill -HUP $MAINPID', 'KillSignal=SIGINT',
    'User=pgslab', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'PrivateTmp=yes',
    'ReadWritePaths=/run/pgslab /var/log/pgslab', 'RuntimeDirectory=pgslab',
    'LogsDirectory=pgslab') {
	like($unit, qr/^\Q$line\E$/m, "unit: $line");
}
SKIP: {
	skip 'systemd-analyze not installed', 3 unless have('systemd-analyze');
	# verify needs ExecStart to exist: install without DESTDIR under a prefix
	my $prefix = "$tmp/prefix";
	($rc, $out, $err) = run_make('install', "PREFIX=$prefix");
	is($rc, 0, "make install PREFIX=$prefix");
	($rc, $out, $err) = PgSlab::Test::Cluster::run_command([ 'systemd-analyze', 'verify',
		'--man=no', "$prefix/lib/systemd/system/pgslab.service" ]);
	ok($rc == 0 && $err eq '', 'systemd-analyze verify: no errors or unknown keys')
	    or diag("$out\n$err");
	($rc, $out, $err) = PgSlab::Test::Cluster::run_command([ 'systemd-analyze', 'security',
		'--offline=true', "$prefix/lib/systemd/system/pgslab.service" ]);
	my ($score) = "$out\n$err" =~ /Overall exposure level for pgslab\.service: ([\d.]+)/;
	ok(defined $score && $score <= 2.0, 'systemd-analyze security: exposure <= 2.0 (' .
		($score // '?') . ')') or diag("$out\n$err");
	run_make('uninstall', "PREFIX=$prefix");
}
SKIP: {
	skip 'systemd-sysusers not installed', 1 unless have('systemd-sysusers');
	mkdir "$dest/etc";
	($rc, $out, $err) = PgSlab::Test::Cluster::run_command([ 'systemd-sysusers',
		"--root=$dest", "$dest/usr/lib/sysusers.d/pgslab.conf" ]);
	like(PgSlab::Test::Cluster::_slurp("$dest/etc/passwd"), qr/^pgslab:x:\d+:\d+:/m,
		'systemd-sysusers creates the pgslab user from sysusers.d/pgslab.conf')
	    or diag("$out\n$err");
	File::Path::remove_tree("$dest/etc");
}

# ---- README's "Deploying" shows these same commands ------------------------
my $readme = PgSlab::Test::Cluster::_slurp("$root/README.md");
my ($deploying) = $readme =~ /^## Deploying\n(.*?)^## /ms;
for my $cmd ('make install PREFIX=/usr', 'make uninstall PREFIX=/usr', 'pgslab -V',
    'systemd-sysusers /usr/lib/sysusers.d/pgslab.conf', 'systemctl reload pgslab') {
	ok(index($deploying // '', $cmd) >= 0, "README Deploying: $cmd");
}

# ---- make uninstall -------------------------------------------------------
($rc, $out, $err) = run_make('uninstall', "DESTDIR=$dest", 'PREFIX=/usr');
is($rc, 0, 'make uninstall DESTDIR=... PREFIX=/usr') or diag("$out\n$err");
@all = split /\n/, `cd '$dest' && find . -type f`;
is_deeply(\@all, [], 'make uninstall removes every installed file');

done_testing();
