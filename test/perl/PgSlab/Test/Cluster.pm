# PgSlab::Test::Cluster -- throw-away PostgreSQL 15 servers for pgslab's TAP tests.

package PgSlab::Test::Cluster;

use strict;
use warnings;

# Loaded before our END block is compiled, so Test::Builder's END runs after
# ours and its verdict (is_passing) is still readable when we tear down.
use Test::Builder ();
use Test::More ();

use Carp qw(croak);
use Cwd qw(abs_path);
use Errno ();
use Exporter qw(import);
use Fcntl qw(O_WRONLY O_CREAT O_EXCL);
use File::Basename qw(dirname);
use File::Path qw(remove_tree);
use File::Spec;
use File::Temp ();
use POSIX ();
use Scalar::Util qw(weaken);
use Socket qw(AF_INET AF_INET6 SOCK_STREAM SOL_SOCKET SO_REUSEADDR
    inet_pton pack_sockaddr_in pack_sockaddr_in6 unpack_sockaddr_in
    INADDR_LOOPBACK);
use Time::HiRes ();

our @EXPORT    = qw(get_free_port);
our @EXPORT_OK = qw(get_free_port pg_bindir port_is_listening);

=pod

=head1 NAME

PgSlab::Test::Cluster - start, query and tear down a real PostgreSQL 15 server

=head1 SYNOPSIS

  use Test::More;
  use PgSlab::Test::Cluster;

  my $node = PgSlab::Test::Cluster->new(name => 'main');
  $node->start;
  is($node->safe_psql('postgres', 'SELECT 1'), '1', 'server answers');
  $node->create_user('alice', 'alice_pw', method => 'md5');
  my $secret = $node->user_secret('alice');     # "md5..."
  $node->stop;
  done_testing();

=head1 DESCRIPTION

Each object owns a temporary directory holding the data directory
(F<pgdata>), the Unix socket and the server log (F<postgresql.log>).  The
server listens on 127.0.0.1 on a port chosen by C<get_free_port> and on a
Unix socket in that directory.

=head2 Users and passwords

initdb creates the bootstrap superuser B<pgsuper> with password
B<pgsuper_pw> (see C<superuser>, C<superuser_password>).  The harness
never writes a passfile: every client program it runs (psql, pgbench) gets
C<PGPASSWORD> in its own environment only, and all inherited C<PG*>
variables are removed first so the caller's environment cannot redirect a
test.  Connections from the harness go over TCP, so they exercise the
configured password method.

Authentication: Unix-socket connections are C<trust>; TCP connections use
the method given by C<auth_method> (default C<scram-sha-256>).

=head2 Running as root

PostgreSQL refuses to run as root.  When the tests run as root (as CI does),
the harness creates the system user B<pgslab_pg> if missing, hands the
temporary directory to it, and runs initdb, pg_ctl and postgres under that
uid (set in a forked child with setgid/setuid, no extra tools needed).
Client programs keep running as the calling user.

=head2 Teardown

Live clusters are tracked in a package list.  A cluster is stopped (mode
immediate) and its directory removed when the object is destroyed, in an
END block, and on SIGINT/SIGTERM (the handlers installed when this module
is loaded stop every proxy and cluster, then exit with 128+signal).  Set
C<PGSLAB_KEEP_TMP=1> to keep the directories for inspection.  When the
test script has failed, the tail of each server log is printed with diag()
before removal.  Only the process that created an object tears it down, so
a forked child exiting does not kill its parent's servers.

=head2 Environment

C<PGSLAB_PG_BINDIR> overrides where PostgreSQL binaries are looked up;
C<PGSLAB_KEEP_TMP> keeps temporary directories; C<PGSLAB_TEST_TIMEOUT>
(seconds, default 180) bounds every client program run by the harness.

=cut

use constant {
	SUPERUSER      => 'pgsuper',
	SUPERUSER_PW   => 'pgsuper_pw',
	PG_OS_USER     => 'pgslab_pg',
	HOST           => '127.0.0.1',
};

# Package state: every live cluster (weak refs), and hooks other harness
# modules register to be torn down before clusters (proxies sit in front).
our @ALL_NODES;
our @TEARDOWN_HOOKS;
my %port_locks;			# port => lock file path, owned by this process
my $bindir_cache;

# ---------------------------------------------------------------------------
# Helpers shared with PgSlab::Test::Proxy

=pod

=head1 FUNCTIONS

=over

=item pg_bindir()

Directory of the PostgreSQL 15 binaries: C<$PGSLAB_PG_BINDIR> if set, else
C<pg_config --bindir> when C<pg_config --version> reports 15, else
F</usr/lib/postgresql/15/bin>.

=cut

sub pg_bindir
{
	return $bindir_cache if defined $bindir_cache;
	if ($ENV{PGSLAB_PG_BINDIR}) {
		$bindir_cache = $ENV{PGSLAB_PG_BINDIR};
		return $bindir_cache;
	}
	my $ver = `pg_config --version 2>/dev/null` // '';
	if ($ver =~ /PostgreSQL 15\b/) {
		my $dir = `pg_config --bindir 2>/dev/null` // '';
		chomp $dir;
		if ($dir ne '' && -x "$dir/initdb") {
			$bindir_cache = $dir;
			return $bindir_cache;
		}
	}
	$bindir_cache = '/usr/lib/postgresql/15/bin';
	return $bindir_cache;
}

sub _bin
{
	my ($prog) = @_;
	my $path = pg_bindir() . "/$prog";
	croak "PostgreSQL program $path not found (is postgresql-15 installed?)"
	    unless -x $path;
	return $path;
}

sub _have_ipv6
{
	socket(my $s, AF_INET6, SOCK_STREAM, 0) or return 0;
	my $ok = bind($s, pack_sockaddr_in6(0, inet_pton(AF_INET6, '::1')));
	close $s;
	return $ok ? 1 : 0;
}

# Can <port> be bound on <family>/<addr> right now?  Plain bind, no
# SO_REUSEADDR, so a listener on the wildcard address also counts as busy.
sub _port_bindable
{
	my ($port, $v6) = @_;
	my $s;
	if ($v6) {
		socket($s, AF_INET6, SOCK_STREAM, 0) or return 0;
		return bind($s, pack_sockaddr_in6($port, inet_pton(AF_INET6, '::1')))
		    ? 1 : 0;
	}
	socket($s, AF_INET, SOCK_STREAM, 0) or return 0;
	return bind($s, pack_sockaddr_in($port, INADDR_LOOPBACK)) ? 1 : 0;
}

sub _lock_port
{
	my ($port) = @_;
	my $dir = File::Spec->tmpdir;
	my $path = "$dir/pgslab_port_$port.lock";
	for (1 .. 2) {
		if (sysopen(my $fh, $path, O_WRONLY | O_CREAT | O_EXCL, 0644)) {
			print $fh "$$\n";
			close $fh;
			$port_locks{$port} = [ $path, $$ ];
			return 1;
		}
		return 0 unless $!{EEXIST};
		# Stale lock from a dead process?  Remove it and retry once.
		open(my $in, '<', $path) or next;
		my $pid = <$in> // '';
		close $in;
		chomp $pid;
		return 0 if $pid =~ /^\d+$/ && (kill(0, $pid) || $!{EPERM});
		unlink $path;
	}
	return 0;
}

=item get_free_port()

Returns a TCP port that is free on 127.0.0.1 (and on ::1 when the host has
IPv6).  The kernel picks a candidate (bind to port 0); the harness then
re-checks it on both addresses and takes a lock file
F<$TMPDIR/pgslab_port_PORT.lock> (removed at exit) so that concurrent test
runs on one machine never hand out the same port.  Dies after 100 tries.

=cut

sub get_free_port
{
	my $v6 = _have_ipv6();
	for (1 .. 100) {
		socket(my $s, AF_INET, SOCK_STREAM, 0) or croak "socket: $!";
		bind($s, pack_sockaddr_in(0, INADDR_LOOPBACK)) or croak "bind: $!";
		my ($port) = unpack_sockaddr_in(getsockname($s));
		close $s;
		next if $port_locks{$port};
		next unless _port_bindable($port, 0);
		next if $v6 && !_port_bindable($port, 1);
		next unless _lock_port($port);
		return $port;
	}
	croak "get_free_port: no free port found";
}

sub _release_port
{
	my ($port) = @_;
	my $l = delete $port_locks{$port} or return;
	unlink $l->[0] if $l->[1] == $$;
}

sub _release_ports
{
	for my $port (keys %port_locks) {
		my ($path, $pid) = @{ delete $port_locks{$port} };
		unlink $path if $pid == $$;
	}
}

=item port_is_listening($host, $port)

True if a TCP connection to C<$host>:C<$port> succeeds now.

=cut

sub port_is_listening
{
	my ($host, $port) = @_;
	my $v6 = $host =~ /:/;
	my $s;
	socket($s, $v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0) or return 0;
	my $addr = $v6
	    ? pack_sockaddr_in6($port, inet_pton(AF_INET6, $host))
	    : pack_sockaddr_in($port, inet_pton(AF_INET, $host));
	my $ok = connect($s, $addr) ? 1 : 0;
	close $s;
	return $ok;
}

# Quote a libpq connection-string value when needed.
sub _connstr_value
{
	my ($v) = @_;
	return $v if $v ne '' && $v !~ /[\s'\\]/;
	$v =~ s/([\\'])/\\$1/g;
	return "'$v'";
}

sub _build_connstr
{
	my (%p) = @_;
	my @order = qw(host port user dbname password);
	my %seen;
	my @parts;
	for my $k (@order, sort keys %p) {
		next if $seen{$k}++;
		next unless defined $p{$k};
		push @parts, "$k=" . _connstr_value($p{$k});
	}
	return join(' ', @parts);
}

# SQL quoting helpers for tests.
sub quote_ident
{
	my ($s) = @_;
	$s =~ s/"/""/g;
	return qq{"$s"};
}

sub quote_literal
{
	my ($s) = @_;
	$s =~ s/'/''/g;
	return "'$s'";
}

# Look up (or create, when root) the unprivileged OS user for the server.
# Returns (uid, gid) or () when no switch is needed.
sub _pg_os_user
{
	return () if $> != 0;
	my @pw = getpwnam(PG_OS_USER);
	unless (@pw) {
		my $useradd = -x '/usr/sbin/useradd' ? '/usr/sbin/useradd' : 'useradd';
		# A concurrent test run may win the race: re-check afterwards.
		system($useradd, '--system', '--user-group', '--no-create-home',
		    '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin',
		    PG_OS_USER);
		@pw = getpwnam(PG_OS_USER);
		croak "could not create OS user " . PG_OS_USER unless @pw;
	}
	return ($pw[2], $pw[3]);
}

=item run_command(\@argv, %opts)

Runs a program to completion and returns C<(exit_code, stdout, stderr)>
(one trailing newline removed from each).  Options: C<stdin> (string),
C<env> (hashref: set these, after removing every inherited C<PG*>
variable), C<as_user> (C<[uid, gid]> to switch to before exec), C<cwd>,
C<timeout> (seconds, default C<$PGSLAB_TEST_TIMEOUT> or 180; on expiry the
program is killed and the exit code is 124).  A program killed by signal N
gives 128+N; a program that cannot be executed gives 127.

=cut

sub run_command
{
	my ($argv, %o) = @_;
	my $out = File::Temp->new(TEMPLATE => 'pgslab_out_XXXXXX', TMPDIR => 1);
	my $err = File::Temp->new(TEMPLATE => 'pgslab_err_XXXXXX', TMPDIR => 1);
	my $in;
	if (defined $o{stdin}) {
		$in = File::Temp->new(TEMPLATE => 'pgslab_in_XXXXXX', TMPDIR => 1);
		print $in $o{stdin};
		close $in;
	}
	my $pid = spawn_command($argv,
		%o,
		stdin_file  => $in ? $in->filename : undef,
		stdout_file => $out->filename,
		stderr_file => $err->filename);
	my $timeout = $o{timeout} // $ENV{PGSLAB_TEST_TIMEOUT} // 180;
	my $status = wait_pid($pid, $timeout);
	my $rc;
	if (!defined $status) {
		kill 'KILL', $pid;
		waitpid($pid, 0);
		$rc = 124;
	} elsif ($status & 127) {
		$rc = 128 + ($status & 127);
	} else {
		$rc = $status >> 8;
	}
	my $stdout = _slurp($out->filename);
	my $stderr = _slurp($err->filename);
	$stderr .= "\n[harness: timed out after ${timeout}s: @$argv]" if $rc == 124 && !defined $status;
	chomp $stdout;
	chomp $stderr;
	return ($rc, $stdout, $stderr);
}

=item spawn_command(\@argv, %opts)

Forks and execs a program in the background and returns its pid.  Options
as for C<run_command>, plus C<stdin_file>, C<stdout_file>, C<stderr_file>
(paths; output files are opened for append, default F</dev/null>).  The
files are opened before privileges are dropped.

=cut

sub spawn_command
{
	my ($argv, %o) = @_;
	my $pid = fork();
	croak "fork: $!" unless defined $pid;
	return $pid if $pid;

	# Child: never return into the test, never run END blocks.  Reset
	# dispositions: a shell running us in the background ignores INT and
	# QUIT, and an ignored signal would stay ignored across exec.
	$SIG{$_} = 'DEFAULT' for qw(INT TERM QUIT HUP PIPE USR1 USR2 CHLD ALRM);
	eval {
		my $inf = $o{stdin_file} // '/dev/null';
		open(STDIN, '<', $inf) or die "stdin $inf: $!\n";
		my $of = $o{stdout_file} // '/dev/null';
		open(STDOUT, '>>', $of) or die "stdout $of: $!\n";
		my $ef = $o{stderr_file} // $of;
		open(STDERR, '>>', $ef) or die "stderr $ef: $!\n";
		for my $k (keys %ENV) {
			delete $ENV{$k} if $k =~ /^PG/;
		}
		my $env = $o{env} // {};
		for my $k (keys %$env) {
			if (defined $env->{$k}) {
				$ENV{$k} = $env->{$k};
			} else {
				delete $ENV{$k};
			}
		}
		if ($o{as_user}) {
			my ($uid, $gid) = @{ $o{as_user} };
			$) = "$gid $gid";
			POSIX::setgid($gid) or die "setgid($gid): $!\n";
			POSIX::setuid($uid) or die "setuid($uid): $!\n";
			die "could not drop privileges\n" if $< != $uid || $> != $uid;
		}
		if (defined $o{cwd}) {
			chdir $o{cwd} or die "chdir $o{cwd}: $!\n";
		}
		exec { $argv->[0] } @$argv;
		die "exec $argv->[0]: $!\n";
	};
	print STDERR "[harness] $@";
	POSIX::_exit(127);
}

=item wait_pid($pid, $timeout)

Waits up to C<$timeout> seconds for child C<$pid>; returns its wait status
(as C<$?>) or undef if it is still running.

=cut

sub wait_pid
{
	my ($pid, $timeout) = @_;
	my $deadline = Time::HiRes::time() + $timeout;
	my $nap = 0.001;
	while (1) {
		my $r = waitpid($pid, POSIX::WNOHANG());
		return $? if $r == $pid;
		return -1 if $r == -1;		# not our child / already reaped
		return undef if Time::HiRes::time() >= $deadline;
		Time::HiRes::sleep($nap);
		$nap *= 2 if $nap < 0.05;
	}
}

sub _slurp
{
	my ($path) = @_;
	open(my $fh, '<', $path) or return '';
	local $/;
	my $c = <$fh>;
	close $fh;
	return $c // '';
}

# Pick a base for temp dirs that an unprivileged server user can traverse:
# every ancestor must be searchable by "others" (or owned by that user).
sub _tmp_base
{
	my ($uid) = @_;
	my $base = File::Spec->tmpdir;
	return $base unless defined $uid;
	my $d = abs_path($base) // return '/tmp';
	while (1) {
		my @st = stat($d);
		return '/tmp' unless @st && (($st[2] & 01) || $st[4] == $uid);
		last if $d eq '/';
		$d = dirname($d);
	}
	return $base;
}

=item make_temp_dir($prefix, [uid, gid])

Creates a private temporary directory named after C<$prefix>, owned by
the given uid/gid if passed (the directory's ancestors are checked to be
traversable, falling back to F</tmp>).  Removal is the caller's job (the
harness objects remove theirs at teardown).

=back

=cut

sub make_temp_dir
{
	my ($prefix, $owner) = @_;
	$prefix =~ s/[^A-Za-z0-9_.-]/_/g;
	my $base = _tmp_base($owner ? $owner->[0] : undef);
	my $dir = File::Temp::tempdir("${prefix}_XXXXXX", DIR => $base, CLEANUP => 0);
	if ($owner) {
		chown($owner->[0], $owner->[1], $dir) or croak "chown $dir: $!";
	}
	return $dir;
}

# Write a file (as the current user).
sub _write_file
{
	my ($path, $text, $mode) = @_;
	open(my $fh, $mode // '>', $path) or croak "open $path: $!";
	print $fh $text;
	close($fh) or croak "close $path: $!";
}

# ---------------------------------------------------------------------------
# Cluster objects

=pod

=head1 METHODS

=over

=item PgSlab::Test::Cluster->new(name => 'main', %opts)

Creates the temporary directory, picks a port and runs initdb (the server
is not started).  Options:

=over

=item C<name> -- label used in directory names and messages (default C<main>)

=item C<auth_method> -- C<scram-sha-256> (default), C<md5> or C<trust>,
for TCP connections

=item C<extra_conf> -- arrayref of lines appended to F<postgresql.conf>

=item C<max_connections> -- default 300

=item C<hba> -- arrayref of F<pg_hba.conf> lines placed before the default
rules (first match wins)

=item C<dbname> -- the cluster's default database (default C<postgres>);
created on first start if it does not exist

=back

=cut

sub new
{
	my ($class, %o) = @_;
	my $name = $o{name} // 'main';
	my $auth = $o{auth_method} // 'scram-sha-256';
	croak "auth_method must be md5, scram-sha-256 or trust"
	    unless $auth =~ /^(md5|scram-sha-256|trust)$/;
	my @owner = _pg_os_user();
	my $self = bless {
		name            => $name,
		auth_method     => $auth,
		extra_conf      => $o{extra_conf} // [],
		max_connections => $o{max_connections} // 300,
		hba             => $o{hba} // [],
		dbname          => $o{dbname} // 'postgres',
		owner_pid       => $$,
		as_user         => @owner ? [@owner] : undef,
		running         => 0,
		db_created      => 0,
	}, $class;
	$self->{basedir} = make_temp_dir("pgslab_$name", $self->{as_user});
	$self->{port} = get_free_port();
	push @ALL_NODES, $self;
	weaken($ALL_NODES[-1]);

	$self->_initdb;
	return $self;
}

sub _initdb
{
	my ($self) = @_;
	my $pwfile = "$self->{basedir}/pwfile";
	_write_file($pwfile, SUPERUSER_PW . "\n");
	chown($self->{as_user}[0], $self->{as_user}[1], $pwfile) if $self->{as_user};
	my ($rc, $out, $err) = $self->_run_server_cmd(
		[ _bin('initdb'), '-D', $self->data_dir, '-U', SUPERUSER,
		  "--pwfile=$pwfile", '--auth-local=trust',
		  "--auth-host=$self->{auth_method}", '--no-locale', '-E', 'UTF8',
		  '--no-sync', '--no-instructions' ]);
	unlink $pwfile;
	croak "initdb failed for cluster $self->{name} (exit $rc):\n$out\n$err" if $rc;

	my @conf = (
		'# pgslab test harness settings',
		"listen_addresses = '" . HOST . "'",
		"port = $self->{port}",
		"unix_socket_directories = '$self->{basedir}'",
		"max_connections = $self->{max_connections}",
		'shared_buffers = 32MB',
		'fsync = off',
		'synchronous_commit = off',
		'full_page_writes = off',
		'logging_collector = off',
		'log_destination = stderr',
		"log_line_prefix = '%m [%p] %q%u\@%d '",
		'log_connections = on',
		'log_disconnections = on',
		"password_encryption = 'scram-sha-256'",
		'dynamic_shared_memory_type = mmap',
		@{ $self->{extra_conf} },
	);
	$self->append_conf('postgresql.conf', join("\n", @conf) . "\n");
	$self->write_hba(@{ $self->{hba} });
}

# Run a server-side program (initdb, pg_ctl) as the server's OS user.
sub _run_server_cmd
{
	my ($self, $argv, %o) = @_;
	return run_command($argv,
		as_user => $self->{as_user},
		cwd     => $self->{basedir},
		env     => { LC_ALL => 'C', LANG => 'C' },
		%o);
}

=item name, host, port, socket_dir, data_dir, basedir, logfile, dbname

Accessors.  C<host> is C<127.0.0.1>; C<socket_dir> (= C<basedir>) holds
the Unix socket F<.s.PGSQL.PORT>; C<data_dir> is C<basedir/pgdata>;
C<logfile> is the server log.

=item superuser, superuser_password

C<pgsuper> and C<pgsuper_pw>.

=item is_running

True between a successful start and stop.

=cut

sub name               { $_[0]{name} }
sub host               { HOST }
sub port               { $_[0]{port} }
sub basedir            { $_[0]{basedir} }
sub socket_dir         { $_[0]{basedir} }
sub data_dir           { "$_[0]{basedir}/pgdata" }
sub logfile            { "$_[0]{basedir}/postgresql.log" }
sub dbname             { $_[0]{dbname} }
sub superuser          { SUPERUSER }
sub superuser_password { SUPERUSER_PW }
sub is_running         { $_[0]{running} }

=item append_conf($file, $text)

Appends C<$text> to C<$file> in the data directory (e.g.
C<postgresql.conf>).  Takes effect on reload or restart.

=cut

sub append_conf
{
	my ($self, $file, $text) = @_;
	_write_file($self->data_dir . "/$file", $text, '>>');
}

=item write_hba(@lines)

Rewrites F<pg_hba.conf> with C<@lines> first, followed by the defaults
(C<local all all trust>, then C<host all all 127.0.0.1/32 METHOD> and the
same for ::1).  Call C<reload> afterwards on a running server.

=cut

sub write_hba
{
	my ($self, @lines) = @_;
	my $m = $self->{auth_method};
	my $text = join("\n",
		'# pg_hba.conf written by PgSlab::Test::Cluster',
		@lines,
		'local all all trust',
		"host all all 127.0.0.1/32 $m",
		"host all all ::1/128 $m") . "\n";
	_write_file($self->data_dir . '/pg_hba.conf', $text);
}

=item start(fail_ok => 0)

Starts the server with C<pg_ctl -w> (log to C<logfile>) and waits until it
accepts connections.  Dies with the log on failure unless C<fail_ok>, in
which case it returns 0.  Returns 1 on success.

=cut

sub start
{
	my ($self, %o) = @_;
	croak "cluster $self->{name} already running" if $self->{running};
	my ($rc, $out, $err) = $self->_run_server_cmd(
		[ _bin('pg_ctl'), '-D', $self->data_dir, '-l', $self->logfile,
		  '-w', '-t', '60', 'start' ]);
	if ($rc) {
		# A half-started postmaster must not survive us.
		$self->{running} = 1;
		$self->_stop_quietly;
		return 0 if $o{fail_ok};
		croak "pg_ctl start failed for cluster $self->{name} (exit $rc):\n"
		    . "$out\n$err\n--- server log ---\n" . $self->log_content;
	}
	$self->{running} = 1;
	$self->_create_default_db;
	return 1;
}

sub _create_default_db
{
	my ($self) = @_;
	return if $self->{db_created} || $self->{dbname} eq 'postgres';
	my $exists = $self->safe_psql('postgres',
		'SELECT 1 FROM pg_database WHERE datname = '
		. quote_literal($self->{dbname}));
	$self->safe_psql('postgres', 'CREATE DATABASE ' . quote_ident($self->{dbname}))
	    unless $exists;
	$self->{db_created} = 1;
}

=item stop(mode => 'fast')

Stops the server (C<pg_ctl -m fast|smart|immediate -w stop>).  A no-op when
it is not running.  Dies with the log if pg_ctl fails.

=cut

sub stop
{
	my ($self, %o) = @_;
	return 1 unless $self->{running};
	my $mode = $o{mode} // 'fast';
	my ($rc, $out, $err) = $self->_run_server_cmd(
		[ _bin('pg_ctl'), '-D', $self->data_dir, '-m', $mode, '-w', '-t', '60',
		  'stop' ]);
	if ($rc) {
		$self->_kill_postmaster;
		croak "pg_ctl stop failed for cluster $self->{name} (exit $rc):\n$out\n$err";
	}
	$self->{running} = 0;
	return 1;
}

=item restart(mode => 'fast')

Stops and starts the server (C<pg_ctl restart>); dies with the log on failure.

=cut

sub restart
{
	my ($self, %o) = @_;
	my $mode = $o{mode} // 'fast';
	my ($rc, $out, $err) = $self->_run_server_cmd(
		[ _bin('pg_ctl'), '-D', $self->data_dir, '-l', $self->logfile,
		  '-m', $mode, '-w', '-t', '60', 'restart' ]);
	if ($rc) {
		$self->_stop_quietly;
		croak "pg_ctl restart failed for cluster $self->{name} (exit $rc):\n"
		    . "$out\n$err\n--- server log ---\n" . $self->log_content;
	}
	$self->{running} = 1;
	return 1;
}

=item reload()

Sends SIGHUP via C<pg_ctl reload>.  The server applies it asynchronously;
poll (see C<poll_query_until>) when a test depends on the new settings.

=cut

sub reload
{
	my ($self) = @_;
	my ($rc, $out, $err) = $self->_run_server_cmd(
		[ _bin('pg_ctl'), '-D', $self->data_dir, 'reload' ]);
	croak "pg_ctl reload failed (exit $rc):\n$out\n$err" if $rc;
	return 1;
}

sub _postmaster_pid
{
	my ($self) = @_;
	open(my $fh, '<', $self->data_dir . '/postmaster.pid') or return undef;
	my $pid = <$fh>;
	close $fh;
	return undef unless defined $pid && $pid =~ /^(\d+)/;
	return $1;
}

sub _kill_postmaster
{
	my ($self) = @_;
	my $pid = $self->_postmaster_pid;
	if ($pid && kill(0, $pid)) {
		kill 'KILL', $pid;
		# Backends notice the postmaster's death on their own; give it a beat.
		for (1 .. 100) {
			last unless kill(0, $pid);
			Time::HiRes::sleep(0.02);
		}
	}
	$self->{running} = 0;
}

# Immediate stop for teardown paths: never dies, falls back to SIGKILL.
sub _stop_quietly
{
	my ($self) = @_;
	return unless $self->{running} || $self->_postmaster_pid;
	my ($rc) = eval {
		$self->_run_server_cmd(
			[ _bin('pg_ctl'), '-D', $self->data_dir, '-m', 'immediate', '-w',
			  '-t', '30', 'stop' ], timeout => 40);
	};
	$self->_kill_postmaster if !defined $rc || $rc;
	$self->{running} = 0;
}

=item connstr(%params)

A libpq connection string for this server: C<host>, C<port>, C<user>
(default superuser), C<dbname> (default C<postgres>), plus any other
C<%params> (e.g. C<password>, C<sslmode>; C<< key => undef >> drops a
default).  Values are quoted when needed.  No password is included unless
given.

=cut

sub connstr
{
	my ($self, %p) = @_;
	my %d = (host => HOST, port => $self->{port}, user => SUPERUSER,
		dbname => 'postgres');
	return _build_connstr(%d, %p);
}

=item psql($db, $sql, %opts)

Runs C<$sql> (fed on stdin, so several statements and backslash commands
work) with C<psql -X -A -t -q -v ON_ERROR_STOP=1> over TCP and returns
C<(exit_code, stdout, stderr)>.  Options: C<user> (default superuser),
C<password> (default the superuser's password if C<user> is the
superuser, else none; passed as PGPASSWORD), C<host> (default 127.0.0.1;
a directory means the Unix socket), C<port>, C<params> (hashref of extra
connection parameters), C<extra_args> (arrayref of extra psql arguments),
C<on_error_stop> (default 1), C<timeout>.

=cut

sub psql
{
	my ($self, $db, $sql, %o) = @_;
	return _psql_common(
		host     => HOST,
		port     => $self->{port},
		default_user => SUPERUSER,
		default_password => SUPERUSER_PW,
		db       => $db,
		sql      => $sql,
		%o);
}

# (user, password) a client of _psql_common/_dbi_common logs in with: <user>
# or <default_user>; <password> if given (even undef), else
# <default_password> for the default user and none for anyone else.
sub _client_identity
{
	my (%o) = @_;
	my $user = $o{user} // $o{default_user};
	my $pw = exists $o{password} ? $o{password}
	    : ($user eq $o{default_user} ? $o{default_password} : undef);
	return ($user, $pw);
}

# Shared by Cluster and Proxy: psql against any host/port.
sub _psql_common
{
	my (%o) = @_;
	my ($user, $pw) = _client_identity(%o);
	my $conn = _build_connstr(
		host   => $o{host},
		port   => $o{port},
		user   => $user,
		dbname => $o{db},
		%{ $o{params} // {} });
	my @args = (_bin('psql'), '-X', '-A', '-t', '-q');
	push @args, '-v', 'ON_ERROR_STOP=1' if $o{on_error_stop} // 1;
	push @args, @{ $o{extra_args} // [] };
	push @args, '-d', $conn;
	my %env = (PGCONNECT_TIMEOUT => 10, PGPASSWORD => $pw,
		LC_ALL => 'C', LANG => 'C');
	return run_command(\@args, stdin => $o{sql}, env => \%env,
		timeout => $o{timeout}, as_user => $o{as_user});
}

=item safe_psql($db, $sql, %opts)

Like C<psql> but dies (with stderr) on a non-zero exit and returns stdout
with surrounding whitespace trimmed.

=cut

sub safe_psql
{
	my ($self, $db, $sql, %o) = @_;
	my ($rc, $out, $err) = $self->psql($db, $sql, %o);
	croak "psql failed on cluster $self->{name} (exit $rc): $err\nSQL: $sql" if $rc;
	$out =~ s/^\s+|\s+$//g;
	return $out;
}

=item poll_query_until($db, $sql, $expected = 't', timeout => 10)

Runs C<$sql> every 50 ms until its trimmed output equals C<$expected>;
returns 1, or 0 on timeout.  Query failures are retried too.

=cut

sub poll_query_until
{
	my ($self, $db, $sql, $expected, %o) = @_;
	$expected //= 't';
	return _poll_until($o{timeout}, sub {
		my ($rc, $out) = $self->psql($db, $sql, %o);
		$out =~ s/^\s+|\s+$//g;
		return !$rc && $out eq $expected;
	});
}

# Calls <$cond> every 50 ms until it returns true (1) or <$timeout> seconds
# (default 10) have passed (0).  Shared with PgSlab::Test::Proxy.
sub _poll_until
{
	my ($timeout, $cond) = @_;
	my $deadline = Time::HiRes::time() + ($timeout // 10);
	while (1) {
		return 1 if $cond->();
		return 0 if Time::HiRes::time() >= $deadline;
		Time::HiRes::sleep(0.05);
	}
}

=item connect_dbi($db, %opts)

Returns a L<DBI> handle (DBD::Pg, RaiseError on, AutoCommit on) connected
over TCP.  Options: C<user>, C<password> (defaults as for C<psql>),
C<host>, C<port>, C<params> (hashref added to the DSN), C<attrs> (hashref
of DBI attributes).  Dies on failure.

=cut

sub connect_dbi
{
	my ($self, $db, %o) = @_;
	return _dbi_common(host => HOST, port => $self->{port},
		default_user => SUPERUSER, default_password => SUPERUSER_PW,
		db => $db, %o);
}

sub _dbi_common
{
	my (%o) = @_;
	require DBI;
	my ($user, $pw) = _client_identity(%o);
	my %p = (host => $o{host}, port => $o{port}, dbname => $o{db},
		%{ $o{params} // {} });
	my $dsn = 'dbi:Pg:' . join(';', map { "$_=" . _connstr_value($p{$_}) }
		sort keys %p);
	my $dbh = DBI->connect($dsn, $user, $pw,
		{ RaiseError => 1, PrintError => 0, AutoCommit => 1,
		  %{ $o{attrs} // {} } });
	return $dbh;
}

=item create_user($name, $password, method => 'scram-sha-256', superuser => 0, options => '')

Creates a login role whose password is stored hashed with C<method>
(C<md5> or C<scram-sha-256>; the session's password_encryption is set
before CREATE ROLE).  C<superuser> adds SUPERUSER; C<options> is appended
verbatim (e.g. C<'CREATEDB'>).  The name is quoted as an identifier.

=cut

sub create_user
{
	my ($self, $name, $password, %o) = @_;
	my $method = $o{method} // 'scram-sha-256';
	croak "method must be md5 or scram-sha-256"
	    unless $method =~ /^(md5|scram-sha-256)$/;
	my $sql = "SET password_encryption = '$method';\n"
	    . 'CREATE ROLE ' . quote_ident($name) . ' LOGIN'
	    . ($o{superuser} ? ' SUPERUSER' : '')
	    . (defined $password ? ' PASSWORD ' . quote_literal($password) : '')
	    . (defined $o{options} ? " $o{options}" : '') . ";\n";
	$self->safe_psql('postgres', $sql);
	return 1;
}

=item user_secret($name)

Returns the role's C<pg_authid.rolpassword>: C<md5...> or
C<SCRAM-SHA-256$iterations:salt$StoredKey:ServerKey>, the form pgslab's
auth_file holds.  Dies if the role does not exist or has no password.

=cut

sub user_secret
{
	my ($self, $name) = @_;
	my $s = $self->safe_psql('postgres',
		'SELECT rolpassword FROM pg_authid WHERE rolname = '
		. quote_literal($name));
	croak "role $name has no password" if $s eq '';
	return $s;
}

=item pgbench(@args)

Runs pgbench with C<@args> against this server and returns
C<(exit_code, stdout, stderr)>.  PGHOST, PGPORT, PGUSER (superuser),
PGPASSWORD and PGDATABASE (C<postgres>) are set in its environment, so
C<@args> only needs what differs (C<-U>, a database name, ...).  If the
last argument is a hashref, it is options for C<run_command> (e.g.
C<< { timeout => 60, env => {...} } >>).

=cut

sub pgbench
{
	my ($self, @args) = @_;
	return _pgbench_common(HOST, $self->{port}, @args);
}

sub _pgbench_common
{
	my ($host, $port, @args) = @_;
	my %ro = ref $args[-1] eq 'HASH' ? %{ pop @args } : ();
	my %env = (PGHOST => $host, PGPORT => $port, PGUSER => SUPERUSER,
		PGPASSWORD => SUPERUSER_PW, PGDATABASE => 'postgres',
		PGCONNECT_TIMEOUT => 10, LC_ALL => 'C', LANG => 'C',
		%{ delete $ro{env} // {} });
	return run_command([ _bin('pgbench'), @args ], env => \%env, %ro);
}

=item log_content()

The server log so far (empty string if none).

=cut

sub log_content
{
	my ($self) = @_;
	return _slurp($self->logfile);
}

=item teardown()

Stops the server immediately (if running) and removes the directory
(unless C<PGSLAB_KEEP_TMP>).  Called automatically from DESTROY, END and
the signal handlers; safe to call twice.

=back

=cut

sub teardown
{
	my ($self) = @_;
	_teardown_common($self, sub { $self->_stop_quietly }, $self->{port},
		[ "cluster $self->{name}", $self->logfile ]);
}

# Teardown shared with PgSlab::Test::Proxy, for an object with <owner_pid>
# and <basedir>: only once, and only in the process that created it.  Runs
# <$stop>, shows the tail of each [label, path] in <@logs> if the test
# failed, removes basedir (unless PGSLAB_KEEP_TMP) and releases <$port>.
sub _teardown_common
{
	my ($self, $stop, $port, @logs) = @_;
	return if $self->{torn_down} || $self->{owner_pid} != $$;
	$self->{torn_down} = 1;
	$stop->();
	_maybe_diag_log(@$_) for @logs;
	if ($ENV{PGSLAB_KEEP_TMP}) {
		Test::More::diag("keeping $self->{basedir}") if _failed();
	} else {
		remove_tree($self->{basedir}, { safe => 0 });
	}
	_release_port($port);
}

sub DESTROY
{
	my ($self) = @_;
	local ($@, $!, $?);
	$self->teardown;
}

sub _failed
{
	my $tb = Test::Builder->new;
	return 0 unless $tb->current_test || $tb->has_plan;
	return !$tb->is_passing;
}

# On test failure, show the tail of a log before its directory goes away.
sub _maybe_diag_log
{
	my ($what, $path) = @_;
	return unless _failed();
	my $c = _slurp($path);
	return if $c eq '';
	my @l = split /\n/, $c;
	@l = @l[-40 .. -1] if @l > 40;
	require Test::More;
	Test::More::diag("--- last lines of $what log ($path) ---\n" . join("\n", @l));
}

# Everything this process owns: proxies first (hooks), then clusters.
sub _teardown_all
{
	for my $hook (@TEARDOWN_HOOKS) {
		eval { $hook->() };
	}
	for my $node (grep { defined } @ALL_NODES) {
		eval { $node->teardown };
	}
	_release_ports();
}

sub _on_signal
{
	my ($sig) = @_;
	# On Ctrl-C prove dies too and our stdout/stderr pipes close: writing to
	# them must not kill us (SIGPIPE) before the servers are stopped.
	$SIG{PIPE} = 'IGNORE';
	local $SIG{INT} = 'IGNORE';
	local $SIG{TERM} = 'IGNORE';
	_teardown_all();
	print STDERR "# caught SIG$sig: stopped test servers\n";
	exit(128 + ($sig eq 'INT' ? 2 : 15));
}

$SIG{INT} = \&_on_signal if !$SIG{INT} || $SIG{INT} eq 'DEFAULT';
$SIG{TERM} = \&_on_signal if !$SIG{TERM} || $SIG{TERM} eq 'DEFAULT';

# Objects and port locks only act in the process that created them, so a
# forked child exiting does not tear down its parent's servers.
END {
	local $?;
	_teardown_all();
}

1;
