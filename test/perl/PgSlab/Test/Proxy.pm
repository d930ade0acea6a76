# PgSlab::Test::Proxy -- run pgslab with a generated PgBouncer-format config in TAP tests.

package PgSlab::Test::Proxy;

use strict;
use warnings;

use Carp qw(croak);
use Cwd qw(abs_path getcwd);
use Exporter qw(import);
use POSIX ();
use Scalar::Util qw(blessed weaken);
use Time::HiRes ();

use PgSlab::Test::Cluster ();

our @EXPORT    = qw(userlist_from_cluster);
our @EXPORT_OK = qw(userlist_from_cluster ini_quote_userlist_field);

=pod

=head1 NAME

PgSlab::Test::Proxy - start, drive and tear down pgslab in front of a test cluster

=head1 SYNOPSIS

  use Test::More;
  use PgSlab::Test::Cluster;
  use PgSlab::Test::Proxy;

  my $node = PgSlab::Test::Cluster->new(name => 'main');
  $node->start;
  $node->create_user('app', 'app_pw');
  my $proxy = PgSlab::Test::Proxy->new(
      cluster  => $node,
      settings => { pool_mode => 'transaction', default_pool_size => 5 },
      userlist => userlist_from_cluster($node, 'app'));
  $proxy->start;
  is($proxy->safe_psql('postgres', 'SELECT 1', user => 'app', password => 'app_pw'), '1');
  my @pools = $proxy->admin_hash('SHOW POOLS');
  is($proxy->stop, 0, 'clean exit on SIGINT');
  done_testing();

=head1 DESCRIPTION

Each object owns a temporary directory with F<pgslab.ini>, F<userlist.txt>,
pgslab's logfile F<pgslab.log>, its stdout/stderr F<pgslab.out> and its Unix
socket.  pgslab is run as C<BINARY [-v...] [args] pgslab.ini> in the
foreground, where BINARY is the C<binary> option, else C<$PGSLAB>, else
F<./pgslab> (made absolute when the object is created).

Unless told otherwise the config file and the userlist are rewritten from
the object's state by C<write_config> at C<new>, C<start> and C<reload>.

Teardown works like L<PgSlab::Test::Cluster>: DESTROY, the END block and the
SIGINT/SIGTERM handlers stop every proxy this process started (SIGINT, then
SIGQUIT, then SIGKILL) before the clusters behind them, and remove the
directory unless C<PGSLAB_KEEP_TMP> is set.  On test failure the tail of
the proxy's log and output is printed with diag().

Clients run by this module (psql, pgbench) connect as the cluster's
superuser (C<pgsuper> / C<pgsuper_pw>) unless given C<user>/C<password>;
the password goes in PGPASSWORD of that client only.

=cut

our @ALL_PROXIES;		# weak refs to every live proxy of this process

push @PgSlab::Test::Cluster::TEARDOWN_HOOKS, sub {
	for my $p (grep { defined } @ALL_PROXIES) {
		eval { $p->teardown };
	}
};

=pod

=head1 FUNCTIONS

=over

=item userlist_from_cluster($cluster, @users)

=item $proxy->userlist_from_cluster(@users)

Returns an arrayref C<[[user, secret], ...]> with each secret read from the
running cluster's pg_authid (L<PgSlab::Test::Cluster/user_secret>): the md5 or
SCRAM verifier, as pgslab's auth_file stores them.  With no C<@users>, the
cluster's superuser.  Exported by default.

=cut

sub userlist_from_cluster
{
	my ($first, @users) = @_;
	my $cluster = blessed($first) && $first->isa(__PACKAGE__)
	    ? $first->{cluster} : $first;
	croak "userlist_from_cluster needs a cluster"
	    unless blessed($cluster) && $cluster->isa('PgSlab::Test::Cluster');
	@users = ($cluster->superuser) unless @users;
	return [ map { [ $_, $cluster->user_secret($_) ] } @users ];
}

=item ini_quote_userlist_field($s)

C<$s> in double quotes with embedded double quotes doubled, as in an
auth_file line.

=back

=cut

sub ini_quote_userlist_field
{
	my ($s) = @_;
	$s =~ s/"/""/g;
	return qq{"$s"};
}

=pod

=head1 METHODS

=over

=item PgSlab::Test::Proxy->new(%opts)

Creates the directory, picks a free port and writes the config files
(pgslab is not started).  Options:

=over

=item C<cluster> -- a L<PgSlab::Test::Cluster> (optional if C<databases>
is given)

=item C<databases> -- hashref C<< name => value >> for C<[databases]>.  A
value is either a string written verbatim (C<'host=127.0.0.1 port=5432
dbname=postgres'>) or a hashref of C<< key => value >> pairs (written sorted,
single-quoted when they contain spaces or quotes).  Default: C<postgres>
and the cluster's default database (L<PgSlab::Test::Cluster/dbname>), each
as C<host=127.0.0.1 port=PORT dbname=NAME>.

=item C<users> -- hashref for a C<[users]> section (same value forms);
the section is written only when given

=item C<settings> -- hashref merged over the defaults of C<[pgbouncer]>;
a value of undef removes a default.  Defaults: C<listen_addr=127.0.0.1>,
C<listen_port=PORT>, C<unix_socket_dir=DIR>, C<auth_type=scram-sha-256>,
C<auth_file=DIR/userlist.txt>, C<logfile=DIR/pgslab.log>,
C<admin_users=ADMIN>, C<pool_mode=session>.

=item C<userlist> -- arrayref of C<[user, secret]> pairs for
F<userlist.txt> (secrets: plain text, C<md5...> or C<SCRAM-SHA-256$...>)

=item C<add_superuser> -- default 1: with a cluster, add the cluster
superuser to the userlist if absent (its verifier when the cluster is
running, else its plain password), so C<admin> and the default client
identity can log in

=item C<admin_user> -- default the cluster superuser (C<pgsuper>);
C<admin_password> -- default that user's password

=item C<admin_db> -- admin console database name, default C<pgslab>

=item C<binary>, C<verbose> (number of C<-v>), C<args> (arrayref of extra
arguments placed before the config path), C<name> (label, default C<proxy>)

=item C<wrapper> -- arrayref of a command prefix pgslab is run under
(e.g. C<['prlimit', '--nofile=40:40']>); pid is then the wrapper's, so the
wrapper must exec pgslab (as prlimit does)

=item C<run_as> -- OS user name to run pgslab as (default: the current
user); the directory is handed to that user

=back

=cut

sub new
{
	my ($class, %o) = @_;
	my $cluster = $o{cluster};
	croak "need cluster or databases" unless $cluster || $o{databases};
	my $bin = $o{binary} // $ENV{PGSLAB} // './pgslab';
	$bin = abs_path($bin) // $bin if $bin =~ m{/};
	my $name = $o{name} // 'proxy';
	my $owner;
	if (defined $o{run_as}) {
		my @pw = getpwnam($o{run_as}) or croak "no OS user $o{run_as}";
		$owner = [ $pw[2], $pw[3] ];
	}
	my $su = $cluster ? $cluster->superuser : PgSlab::Test::Cluster::SUPERUSER;
	my $self = bless {
		name          => $name,
		cluster       => $cluster,
		binary        => $bin,
		verbose       => $o{verbose} // 0,
		args          => $o{args} // [],
		wrapper       => $o{wrapper} // [],
		users         => $o{users},
		peers         => $o{peers},
		userlist      => $o{userlist} // [],
		add_superuser => $o{add_superuser} // 1,
		admin_user    => $o{admin_user} // $su,
		admin_password => exists $o{admin_password} ? $o{admin_password}
		    : PgSlab::Test::Cluster::SUPERUSER_PW,
		admin_db      => $o{admin_db} // 'pgslab',
		as_user       => $owner,
		owner_pid     => $$,
		pid           => undef,
		exit_status   => undef,
	}, $class;
	$self->{basedir} = PgSlab::Test::Cluster::make_temp_dir("pgslab_$name", $owner);
	$self->{port_reserved} = PgSlab::Test::Cluster::get_free_port();
	push @ALL_PROXIES, $self;
	weaken($ALL_PROXIES[-1]);

	if ($o{databases}) {
		$self->{databases} = { %{ $o{databases} } };
	} else {
		my $cport = $cluster->port;
		my $host = $cluster->host;
		my %d;
		for my $db ('postgres', $cluster->dbname) {
			$d{$db} = "host=$host port=$cport dbname=$db";
		}
		$self->{databases} = \%d;
	}
	$self->{settings} = {
		listen_addr     => '127.0.0.1',
		listen_port     => $self->{port_reserved},
		unix_socket_dir => $self->{basedir},
		auth_type       => 'scram-sha-256',
		auth_file       => $self->userlist_path,
		logfile         => $self->logfile,
		admin_users     => $self->{admin_user},
		pool_mode       => 'session',
	};
	$self->set(%{ $o{settings} // {} });
	$self->write_config;
	return $self;
}

=item basedir, socket_dir, ini_path, userlist_path, logfile, outfile, binary, cluster

Accessors.  C<socket_dir> is the effective C<unix_socket_dir> (default
C<basedir>): pass it as C<host> to connect over the Unix socket.

=item host, port

Where clients connect over TCP: C<127.0.0.1> (or C<::1> when
C<listen_addr> is an IPv6 address only) and the effective C<listen_port>.

=item pid, exit_status

The running pgslab's pid (undef when not running); the wait status (as
C<$?>) of the last process once reaped.

=cut

sub basedir       { $_[0]{basedir} }
sub ini_path      { "$_[0]{basedir}/pgslab.ini" }
sub userlist_path { "$_[0]{basedir}/userlist.txt" }
sub logfile       { "$_[0]{basedir}/pgslab.log" }
sub outfile       { "$_[0]{basedir}/pgslab.out" }
sub binary        { $_[0]{binary} }
sub cluster       { $_[0]{cluster} }
sub pid           { $_[0]{pid} }
sub exit_status   { $_[0]{exit_status} }
sub port          { $_[0]{settings}{listen_port} }
sub socket_dir    { $_[0]{settings}{unix_socket_dir} // $_[0]{basedir} }
sub admin_user    { $_[0]{admin_user} }

sub host
{
	my ($self) = @_;
	my $la = $self->{settings}{listen_addr} // '';
	my @a = split /\s*,\s*/, $la;
	return '127.0.0.1' if !@a || grep { $_ eq '*' || $_ !~ /:/ } @a;
	return '::1';
}

=item settings

A copy of the effective C<[pgbouncer]> settings (hashref).

=item set(%settings)

Merges C<%settings> into the C<[pgbouncer]> settings (undef deletes a
key).  Takes effect at the next C<write_config> / C<reload> / C<start>.

=item set_databases(%dbs), set_users(%users)

Same for the C<[databases]> and C<[users]> sections.

=item set_userlist(\@pairs)

Replaces the userlist (C<[[user, secret], ...]>).

=cut

sub settings { return { %{ $_[0]{settings} } } }

sub _merge
{
	my ($h, %kv) = @_;
	for my $k (keys %kv) {
		if (defined $kv{$k}) {
			$h->{$k} = $kv{$k};
		} else {
			delete $h->{$k};
		}
	}
}

sub set           { my ($s, %kv) = @_; _merge($s->{settings}, %kv); return $s }
sub set_databases { my ($s, %kv) = @_; _merge($s->{databases}, %kv); return $s }
sub set_peers     { my ($s, %kv) = @_; _merge($s->{peers} //= {}, %kv); return $s }

sub set_users
{
	my ($s, %kv) = @_;
	$s->{users} //= {};
	_merge($s->{users}, %kv);
	return $s;
}

sub set_userlist
{
	my ($s, $pairs) = @_;
	$s->{userlist} = [ @$pairs ];
	return $s;
}

# Format a [databases]/[users] value.
sub _entry_value
{
	my ($v) = @_;
	return $v unless ref $v eq 'HASH';
	return join(' ', map {
		my $x = $v->{$_};
		if ($x eq '' || $x =~ /[\s'\\]/) {
			$x =~ s/'/''/g;
			$x = "'$x'";
		}
		"$_=$x";
	} sort keys %$v);
}

=item config_text

The F<pgslab.ini> text C<write_config> would write: a comment line, then
C<[databases]>, C<[users]> (only if set) and C<[pgbouncer]>, each with
C<key = value> lines sorted by key.

=item userlist_text

The F<userlist.txt> text: one C<"user" "secret"> line per entry, double
quotes inside values doubled.

=item write_config

Writes both files (mode 0600; owned by C<run_as> if given).

=cut

sub config_text
{
	my ($self) = @_;
	my @out = ('; pgslab.ini written by PgSlab::Test::Proxy', '');
	my @sections = ([ databases => $self->{databases} ]);
	push @sections, [ users => $self->{users} ] if $self->{users};
	push @sections, [ peers => $self->{peers} ] if $self->{peers};
	push @sections, [ pgbouncer => $self->{settings} ];
	for my $s (@sections) {
		my ($title, $h) = @$s;
		push @out, "[$title]";
		push @out, "$_ = " . _entry_value($h->{$_}) for sort keys %$h;
		push @out, '';
	}
	return join("\n", @out);
}

sub _effective_userlist
{
	my ($self) = @_;
	my @list = @{ $self->{userlist} };
	my $c = $self->{cluster};
	if ($c && $self->{add_superuser}
	    && !grep { $_->[0] eq $c->superuser } @list) {
		my $secret = $self->{su_secret};
		if (!defined $secret && $c->is_running) {
			$secret = $self->{su_secret} = $c->user_secret($c->superuser);
		}
		push @list, [ $c->superuser, $secret // $c->superuser_password ];
	}
	return @list;
}

sub userlist_text
{
	my ($self) = @_;
	return join('', map {
		ini_quote_userlist_field($_->[0]) . ' '
		    . ini_quote_userlist_field($_->[1]) . "\n"
	} $self->_effective_userlist);
}

sub write_config
{
	my ($self) = @_;
	for my $f ([ $self->ini_path, $self->config_text ],
	    [ $self->userlist_path, $self->userlist_text ]) {
		my ($path, $text) = @$f;
		my $tmp = "$path.tmp";
		PgSlab::Test::Cluster::_write_file($tmp, $text);
		chmod 0600, $tmp;
		chown($self->{as_user}[0], $self->{as_user}[1], $tmp) if $self->{as_user};
		rename($tmp, $path) or croak "rename $tmp: $!";
	}
	return 1;
}

=item start(timeout => 10)

Writes the config, forks and execs pgslab (stdout and stderr appended to
C<outfile>), then waits until C<host:port> accepts a TCP connection (or,
when C<listen_addr> is empty, until the Unix socket file exists).  Dies
with the log and output if the process exits or the timeout passes; in the
latter case the process is killed first.  Returns the pid.

=cut

sub start
{
	my ($self, %o) = @_;
	croak "pgslab already running (pid $self->{pid})" if $self->is_running;
	croak "pgslab binary $self->{binary} is not executable" unless -x $self->{binary};
	$self->write_config;
	my @argv = (@{ $self->{wrapper} }, $self->{binary}, ('-v') x $self->{verbose}, @{ $self->{args} },
		$self->ini_path);
	$self->{exit_status} = undef;
	$self->{pid} = PgSlab::Test::Cluster::spawn_command(\@argv,
		stdout_file => $self->outfile,
		stderr_file => $self->outfile,
		as_user     => $self->{as_user},
		cwd         => $self->{basedir});
	my $deadline = Time::HiRes::time() + ($o{timeout} // 10);
	my $tcp = ($self->{settings}{listen_addr} // '') ne '';
	my $sock = $self->socket_dir . '/.s.PGSQL.' . $self->port;
	while (1) {
		unless ($self->is_running) {
			croak "pgslab exited during startup (wait status $self->{exit_status}):\n"
			    . $self->log_content;
		}
		return $self->{pid} if $tcp
		    ? PgSlab::Test::Cluster::port_is_listening($self->host, $self->port)
		    : -S $sock;
		if (Time::HiRes::time() >= $deadline) {
			$self->_terminate(0, 2);
			croak "pgslab did not accept connections on "
			    . ($tcp ? $self->host . ':' . $self->port : $sock)
			    . " within the timeout:\n" . $self->log_content;
		}
		Time::HiRes::sleep(0.02);
	}
}

=item is_running

True if the process is alive (reaps it and records C<exit_status> if
it has exited).

=cut

sub is_running
{
	my ($self) = @_;
	return 0 unless defined $self->{pid};
	my $r = waitpid($self->{pid}, POSIX::WNOHANG());
	return 1 if $r == 0;
	$self->{exit_status} = $r == $self->{pid} ? $? : -1;
	$self->{pid} = undef;
	return 0;
}

=item wait_exit(timeout => 10)

Waits for the process to exit on its own (e.g. after
C<kill_signal('TERM')>); returns its wait status, or undef if it is still
running after the timeout.

=cut

sub wait_exit
{
	my ($self, %o) = @_;
	return $self->{exit_status} unless defined $self->{pid};
	my $st = PgSlab::Test::Cluster::wait_pid($self->{pid}, $o{timeout} // 10);
	return undef unless defined $st;
	$self->{exit_status} = $st;
	$self->{pid} = undef;
	return $st;
}

# SIGINT, then SIGQUIT, then SIGKILL; returns the wait status.
sub _terminate
{
	my ($self, $int_timeout, $quit_timeout) = @_;
	return $self->{exit_status} unless $self->is_running;
	my $pid = $self->{pid};
	for my $step ([ INT => $int_timeout ], [ QUIT => $quit_timeout ], [ KILL => 10 ]) {
		my ($sig, $t) = @$step;
		next if $t <= 0 && $sig ne 'KILL';
		kill $sig, $pid;
		my $st = PgSlab::Test::Cluster::wait_pid($pid, $t);
		if (defined $st) {
			$self->{exit_status} = $st;
			$self->{pid} = undef;
			return $st;
		}
	}
	return undef;
}

=item stop(timeout => 10)

Sends SIGINT (graceful shutdown) and waits up to C<timeout> seconds, then
SIGQUIT (5 s), then SIGKILL.  Returns the wait status as in C<$?> (0 for
a clean exit; C<< >> 8 >> is the exit code, C<& 127> the signal), or the
recorded status if the process had already exited (undef if never
started).

=cut

sub stop
{
	my ($self, %o) = @_;
	return $self->_terminate($o{timeout} // 10, 5);
}

=item kill_signal($sig)

Sends C<$sig> (name such as C<'HUP'> or number) to pgslab; returns the
number of processes signalled (0 if not running).

=cut

sub kill_signal
{
	my ($self, $sig) = @_;
	return 0 unless $self->is_running;
	return kill $sig, $self->{pid};
}

=item reload

Rewrites the config from the current state (see C<set>) and sends SIGHUP.
Dies if pgslab is not running.  pgslab applies it asynchronously; use
C<wait_for_log> or poll with C<admin> to see it take effect.

=cut

sub reload
{
	my ($self) = @_;
	croak "pgslab is not running" unless $self->is_running;
	$self->write_config;
	kill 'HUP', $self->{pid};
	return 1;
}

sub _client_defaults
{
	my ($self, %o) = @_;
	my $c = $self->{cluster};
	return (
		host             => $self->host,
		port             => $self->port,
		default_user     => $c ? $c->superuser : PgSlab::Test::Cluster::SUPERUSER,
		default_password => $c ? $c->superuser_password
		    : PgSlab::Test::Cluster::SUPERUSER_PW,
		%o);
}

=item psql($db, $sql, %opts)

Runs psql against pgslab and returns C<(exit_code, stdout, stderr)>; same
options as L<PgSlab::Test::Cluster/psql> (C<user>, C<password>, C<host>
-- e.g. C<< host => $proxy->socket_dir >> for the Unix socket --,
C<port>, C<params>, C<extra_args>, C<on_error_stop>, C<timeout>, C<as_user>
-- C<[uid, gid]> to run psql as --).  The
default identity is the cluster superuser.

=item safe_psql($db, $sql, %opts)

Dies with stderr on failure; returns trimmed stdout.

=cut

sub psql
{
	my ($self, $db, $sql, %o) = @_;
	return PgSlab::Test::Cluster::_psql_common($self->_client_defaults(
		db => $db, sql => $sql, %o));
}

sub safe_psql
{
	my ($self, $db, $sql, %o) = @_;
	my ($rc, $out, $err) = $self->psql($db, $sql, %o);
	croak "psql through pgslab failed (exit $rc): $err\nSQL: $sql" if $rc;
	$out =~ s/^\s+|\s+$//g;
	return $out;
}

=item admin($sql, %opts)

Runs one command on the admin console (database C<admin_db>, default
C<pgslab>) as the admin user and returns its rows as a list of arrayrefs
(NULL becomes the empty string; commands without a result set return an
empty list).  Dies with stderr on failure.  C<%opts> as for C<psql>
(e.g. another C<user>).

=item admin_hash($sql, %opts)

Same, but returns a list of hashrefs keyed by column name.

=cut

# The whole HTTP reply of metrics_listen's /metrics ('' when it cannot be
# reached); TCP listeners only.
sub metrics
{
	my ($self) = @_;
	my ($host, $port) = ($self->{settings}{metrics_listen} // '') =~ /^(.*):(\d+)$/
	    or croak 'metrics_listen is not set to host:port';
	require IO::Socket::INET;
	my $m = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Timeout => 5)
	    or return '';
	print $m "GET /metrics HTTP/1.0\r\n\r\n";
	local $/;
	return <$m> // '';
}

sub _admin_raw
{
	my ($self, $sql, %o) = @_;
	my ($rc, $out, $err) = $self->psql($self->{admin_db}, $sql,
		user     => $self->{admin_user},
		password => $self->{admin_password},
		%o,
		extra_args => [ '-F', "\x1f", '-R', "\x1e", '-P', 'tuples_only=off',
			'-P', 'footer=off', @{ $o{extra_args} // [] } ]);
	croak "admin command failed (exit $rc): $err\nSQL: $sql" if $rc;
	return () if $out eq '';
	my @rec = split /\x1e/, $out, -1;
	return map { [ split /\x1f/, $_, -1 ] } @rec;
}

sub admin
{
	my ($self, $sql, %o) = @_;
	my @rec = $self->_admin_raw($sql, %o);
	shift @rec;
	return @rec;
}

sub admin_hash
{
	my ($self, $sql, %o) = @_;
	my ($hdr, @rows) = $self->_admin_raw($sql, %o);
	return () unless $hdr;
	return map {
		my $r = $_;
		+{ map { $hdr->[$_] => $r->[$_] } 0 .. $#$hdr };
	} @rows;
}

=item mem_used($name)

The C<used> column of C<SHOW MEM> for the slab cache C<$name> (e.g.
C<client>, C<client_login>), or undef if there is no such row.

=cut

sub mem_used
{
	my ($self, $name) = @_;
	my ($row) = grep { $_->{name} eq $name } $self->admin_hash('SHOW MEM');
	return $row ? $row->{used} : undef;
}

=item connect_dbi($db, %opts)

A DBI/DBD::Pg handle connected through pgslab (options as for
L<PgSlab::Test::Cluster/connect_dbi>).

=cut

sub connect_dbi
{
	my ($self, $db, %o) = @_;
	return PgSlab::Test::Cluster::_dbi_common($self->_client_defaults(db => $db, %o));
}

=item pgbench(@args)

Runs pgbench through pgslab (PGHOST/PGPORT point at the proxy; user,
password and database default as for L<PgSlab::Test::Cluster/pgbench>;
a trailing hashref is L<PgSlab::Test::Cluster/run_command> options).
Returns C<(exit_code, stdout, stderr)>.

=cut

sub pgbench
{
	my ($self, @args) = @_;
	return PgSlab::Test::Cluster::_pgbench_common($self->host, $self->port, @args);
}

=item log_content

pgslab's logfile followed by its captured stdout/stderr.

=item wait_for_log($regex, timeout => 10)

Polls C<log_content> until it matches; returns 1, or 0 on timeout.

=cut

sub log_content
{
	my ($self) = @_;
	my $log = PgSlab::Test::Cluster::_slurp($self->{settings}{logfile} // $self->logfile);
	my $out = PgSlab::Test::Cluster::_slurp($self->outfile);
	return "$log\n--- pgslab stdout/stderr ---\n$out";
}

sub wait_for_log
{
	my ($self, $re, %o) = @_;
	return PgSlab::Test::Cluster::_poll_until($o{timeout},
		sub { $self->log_content =~ $re });
}

=item teardown

Stops pgslab (SIGINT 3 s, SIGQUIT 2 s, SIGKILL) and removes the directory
unless C<PGSLAB_KEEP_TMP>.  Automatic; safe to call twice.

=back

=cut

sub teardown
{
	my ($self) = @_;
	PgSlab::Test::Cluster::_teardown_common($self, sub { $self->_terminate(3, 2) },
		$self->{port_reserved},
		[ "pgslab $self->{name}", $self->logfile ],
		[ "pgslab $self->{name} output", $self->outfile ]);
}

sub DESTROY
{
	my ($self) = @_;
	local ($@, $!, $?);
	$self->teardown;
}

1;
