# PgSlab::Test::Wire -- a raw-socket PostgreSQL v3 wire-protocol client for pgslab's TAP tests.

package PgSlab::Test::Wire;

use strict;
use warnings;

use Digest::SHA qw(hmac_sha256 sha256);
use Digest::MD5 qw(md5_hex);
use Socket qw(SOL_SOCKET SO_LINGER);
use Exporter qw(import);
use IO::Select;
use IO::Socket::INET;
use MIME::Base64 qw(encode_base64 decode_base64);
use Time::HiRes qw(time);

our @EXPORT = qw(raw_connect raw_send raw_read_n read_msg parse_fields
    startup_packet frontend_message read_outcome describe_outcome
    scram_login plain_login raw_query read_until_ready send_cancel
    raw_reset password_login md5_password ext_query msg_sync msg_flush
    read_until_n_ready scram_abandon parse_datarow);
our @EXPORT_OK = (@EXPORT, qw(pbkdf2_sha256 PROTOCOL_3 CANCEL_REQUEST_CODE
    SSL_REQUEST_CODE MAX_MESSAGE));

=pod

=head1 NAME

PgSlab::Test::Wire - talk the PostgreSQL wire protocol over a bare socket

=head1 SYNOPSIS

  use PgSlab::Test::Wire;

  # Hostile input: anything can be sent, the answer is decoded.
  my $s = raw_connect($proxy->host, $proxy->port);
  raw_send($s, startup_packet(user => 'app', database => 'postgres', foo => 'x'));
  my $o = read_outcome($s, 5);
  is($o->{error}{C}, '08P01') or diag(describe_outcome($o));

  # A full SCRAM-SHA-256 login, then a query.
  $s = raw_connect($proxy->host, $proxy->port);
  ok(scram_login($s, 'app', 'app_pw')->{ready}, 'logged in');
  raw_query($s, 'SELECT 1');
  my $r = read_until_ready($s, 5);        # $r->{rows} = [ [ '1' ] ]

  # auth_type = plain, and a CancelRequest with the key it returned.
  my ($c, $pid, $key) = plain_login($host, $port, 'postgres', 'app', 'app_pw');
  send_cancel($host, $port, $pid, $key);

=head1 DESCRIPTION

Tests that must send what no driver would send (garbage, truncated or
oversized packets, CancelRequests with chosen keys) or observe the exact
messages pgslab answers with use these helpers instead of libpq.  Every
read has a deadline, so a test never hangs on a silent server; message
bodies are returned undecoded unless a helper says otherwise.

Messages are returned as C<($type, $body)> where C<$type> is the one-byte
message type (C<'E'>, C<'R'>, C<'Z'>, ...) and C<$body> excludes the type
and length.  Instead of a type, C<'EOF'> means the peer closed the
connection (or reset it) before a whole message arrived, C<'TIMEOUT'> that
nothing arrived in time, and C<'BADLEN'> that the length field was below 4
or above C<MAX_MESSAGE> (1 MiB), followed by that length.

All functions listed under L</FUNCTIONS> are exported by default;
C<pbkdf2_sha256> and the constants only on request.

=head1 CONSTANTS

C<PROTOCOL_3> (196608, protocol 3.0 in a StartupMessage),
C<CANCEL_REQUEST_CODE> (80877102), C<SSL_REQUEST_CODE> (80877103) and
C<MAX_MESSAGE> (1 MiB, the largest length C<read_msg> accepts).

=cut

use constant {
	PROTOCOL_3          => 196608,
	CANCEL_REQUEST_CODE => 80877102,
	SSL_REQUEST_CODE    => 80877103,
	MAX_MESSAGE         => 1024 * 1024,
};

=head1 FUNCTIONS

=head2 Bytes on the socket

=over

=item raw_connect($host, $port)

A blocking TCP connection (5 s connect timeout) in binary mode; dies if it
cannot connect.

=cut

sub raw_connect
{
	my ($host, $port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
		Proto => 'tcp', Timeout => 5) or die "connect $host:$port: $!";
	binmode $s;
	return $s;
}

=item raw_send($s, $data)

Writes all of C<$data>; returns 1, or 0 if the peer closed the connection
(EPIPE/ECONNRESET; SIGPIPE is ignored meanwhile).

=cut

sub raw_send
{
	my ($s, $data) = @_;
	local $SIG{PIPE} = 'IGNORE';
	my $off = 0;
	while ($off < length $data) {
		my $n = syswrite($s, $data, length($data) - $off, $off);
		return 0 unless $n;
		$off += $n;
	}
	return 1;
}

=item raw_read_n($s, $n, $deadline)

Reads exactly C<$n> bytes, waiting until the absolute time C<$deadline>
(C<Time::HiRes::time> seconds); returns them, or undef on EOF, reset or
timeout.

=cut

# Bytes a TLS socket (IO::Socket::SSL) has decrypted already: no select()
# would announce them.
sub _pending
{
	my ($s) = @_;
	return ref($s) && $s->isa('IO::Socket::SSL') && $s->pending;
}

sub raw_read_n
{
	my ($s, $n, $deadline) = @_;
	my $buf = '';
	my $sel = IO::Select->new($s);
	while (length $buf < $n) {
		my $left = $deadline - time;
		return undef if $left <= 0 || !(_pending($s) || $sel->can_read($left));
		my $r = sysread($s, $buf, $n - length $buf, length $buf);
		return undef unless $r;		# EOF or ECONNRESET
	}
	return $buf;
}

=item read_msg($s, $timeout = 5)

Reads one backend message within C<$timeout> seconds: C<($type, $body)>,
C<('EOF')>, C<('TIMEOUT')> or C<('BADLEN', $len)>.

=cut

sub read_msg
{
	my ($s, $timeout) = @_;
	my $deadline = time + ($timeout // 5);
	return ('TIMEOUT') unless _pending($s) || IO::Select->new($s)->can_read($deadline - time);
	my $hdr = raw_read_n($s, 5, $deadline);
	return ('EOF') unless defined $hdr;
	my ($type, $len) = unpack('a1 N', $hdr);
	return ('BADLEN', $len) if $len < 4 || $len > MAX_MESSAGE;
	my $body = $len > 4 ? raw_read_n($s, $len - 4, $deadline) : '';
	return ('EOF') unless defined $body;
	return ($type, $body);
}

=item parse_fields($body)

The fields of an ErrorResponse or NoticeResponse body as a hashref keyed
by field code: C<< { S => 'FATAL', V => 'FATAL', C => '08P01', M => '...' } >>.

=cut

sub parse_fields
{
	my ($body) = @_;
	my %f;
	$f{$1} = $2 while $body =~ /\G([^\0])([^\0]*)\0/gc;
	return \%f;
}

=item startup_packet(@kv)

A protocol 3.0 StartupMessage carrying the C<< key => value >> pairs in
the order given (a key may repeat: the bytes are exactly what is asked).

=cut

sub startup_packet
{
	my (@kv) = @_;
	my $body = pack('N', PROTOCOL_3) . join('', map { "$_\0" } @kv) . "\0";
	return pack('N', 4 + length $body) . $body;
}

=item frontend_message($type, $body)

A well-formed frontend message: C<$type>, the length, C<$body>.  Write
malformed ones by hand.

=back

=cut

sub frontend_message
{
	my ($type, $body) = @_;
	return $type . pack('N', 4 + length $body) . $body;
}

=head2 Startup and authentication

=over

=item read_outcome($s, $timeout)

Reads the answer to a startup or authentication step (C<$timeout> per
message) until an ErrorResponse, ReadyForQuery, an authentication request
that needs an answer (cleartext, md5, SASL, SASLContinue), EOF, a bad
length or a timeout.  After an ErrorResponse it reads on for up to 3 s (at
most 5 messages) to see the connection close.  Returns a hashref:
C<msgs> (arrayref of the types read), C<error> (C<parse_fields> of the
ErrorResponse, or undef), C<eof>, C<ready>, C<timeout> (booleans), C<pid>
and C<key> (BackendKeyData), C<auth> (the last authentication request
code) and C<auth_body> (its data after the code).

=cut

sub read_outcome
{
	my ($s, $timeout) = @_;
	my %o = (msgs => [], error => undef, eof => 0, ready => 0, timeout => 0);
	while (1) {
		my ($t, $b) = read_msg($s, $timeout);
		push @{ $o{msgs} }, $t;
		if ($t eq 'EOF' || $t eq 'BADLEN') { $o{eof} = 1; last }
		if ($t eq 'TIMEOUT') { $o{timeout} = 1; last }
		if ($t eq 'E') {
			$o{error} = parse_fields($b);
			# Skip whatever else is sent (e.g. a second error) until EOF.
			for (1 .. 5) {
				my ($t2) = read_msg($s, 3);
				push @{ $o{msgs} }, $t2;
				if ($t2 eq 'EOF') { $o{eof} = 1; last }
				last if $t2 eq 'TIMEOUT';
			}
			last;
		}
		if ($t eq 'Z') { $o{ready} = 1; last }
		if ($t eq 'K') { @o{qw(pid key)} = unpack('N N', $b) }
		if ($t eq 'R') {
			my $code = unpack('N', $b);
			$o{auth} = $code;
			$o{auth_body} = substr($b, 4);
			last if $code == 3 || $code == 5 || $code == 10 || $code == 11;
		}
	}
	return \%o;
}

=item describe_outcome($o)

A one-line summary of a C<read_outcome> result for diag():
C<messages [R,E,EOF], error FATAL 28P01 "...">.

=cut

sub describe_outcome
{
	my ($o) = @_;
	my $e = $o->{error};
	return sprintf('messages [%s], error %s', join(',', @{ $o->{msgs} }),
		$e ? "$e->{S} $e->{C} \"$e->{M}\"" : 'none');
}

=item pbkdf2_sha256($password, $salt, $iterations)

PBKDF2-HMAC-SHA-256 with one 32-byte block: SCRAM's SaltedPassword.
Results are remembered per (password, salt, iterations), so repeated logins
(and processes forked after a first login) skip the 4,096 rounds.

=cut

my %pbkdf2_memo;	# (password, salt, iterations) => result: logins repeat them

sub pbkdf2_sha256
{
	my ($pw, $salt, $iter) = @_;
	my $memo = join("\0", $pw, $salt, $iter);
	return $pbkdf2_memo{$memo} if exists $pbkdf2_memo{$memo};
	%pbkdf2_memo = () if keys %pbkdf2_memo > 64;
	return $pbkdf2_memo{$memo} = _pbkdf2_sha256($pw, $salt, $iter);
}

sub _pbkdf2_sha256
{
	my ($pw, $salt, $iter) = @_;
	my $u = hmac_sha256($salt . pack('N', 1), $pw);
	my $out = $u;
	for (2 .. $iter) {
		$u = hmac_sha256($u, $pw);
		$out ^= $u;
	}
	return $out;
}

=item scram_login($s, $user, $password, @kv)

On the connected socket C<$s>: a StartupMessage for C<$user> and database
C<postgres> followed by the pairs in C<@kv> (a later C<database> is sent
as well, and wins), then a SCRAM-SHA-256 exchange (no channel binding) if
the server asks for SASL.  Returns the C<read_outcome> of the last step:
C<ready> on success, C<error> when refused.  The server's final signature
is not checked.  Any other authentication request is not answered: the
outcome is returned as it stands.

=cut

sub scram_login
{
	my ($s, $user, $password, @kv) = @_;
	raw_send($s, startup_packet(user => $user, database => 'postgres', @kv));
	my $o = read_outcome($s, 5);
	return $o unless defined $o->{auth} && $o->{auth} == 10 && !$o->{error};
	my $nonce = encode_base64(join('', map { chr(int rand 256) } 1 .. 18), '');
	my $cfb = "n=,r=$nonce";
	my $cf = "n,,$cfb";
	raw_send($s, frontend_message('p', "SCRAM-SHA-256\0" . pack('N', length $cf) . $cf));
	$o = read_outcome($s, 5);
	return $o unless defined $o->{auth} && $o->{auth} == 11 && !$o->{error};
	my $sf = $o->{auth_body};
	my ($r) = $sf =~ /r=([^,]+)/;
	my ($salt) = $sf =~ /s=([^,]+)/;
	my ($iter) = $sf =~ /i=(\d+)/;
	my $salted = pbkdf2_sha256($password, decode_base64($salt), $iter);
	my $ck = hmac_sha256('Client Key', $salted);
	my $cfwp = "c=biws,r=$r";
	my $sig = hmac_sha256("$cfb,$sf,$cfwp", sha256($ck));
	raw_send($s, frontend_message('p', "$cfwp,p=" . encode_base64($ck ^ $sig, '')));
	return read_outcome($s, 5);
}

=item plain_login($host, $port, $db, $user, $password)

Connects and logs in, answering a cleartext password request (pgslab's
C<auth_type = plain>) with C<$password>; reads up to ReadyForQuery within
5 s.  Returns C<($socket, $pid, $key)>, the last two from the
BackendKeyData.  Dies on an ErrorResponse, EOF or timeout.

=back

=cut

sub plain_login
{
	my ($host, $port, $db, $user, $password) = @_;
	my $s = raw_connect($host, $port);
	raw_send($s, startup_packet(user => $user, database => $db));
	my $deadline = time + 5;
	my ($pid, $key);
	while (1) {
		my ($t, $b) = read_msg($s, $deadline - time);
		die "raw login failed: $t " . ($t eq 'E' ? parse_fields($b)->{M} : '')
		    if $t eq 'E' || $t eq 'EOF' || $t eq 'TIMEOUT' || $t eq 'BADLEN';
		raw_send($s, frontend_message('p', "$password\0"))
		    if $t eq 'R' && unpack('N', $b) == 3;
		($pid, $key) = unpack('N N', $b) if $t eq 'K';
		last if $t eq 'Z';
	}
	return ($s, $pid, $key);
}

=head2 After login

=over

=item raw_query($s, $sql)

Sends a simple-protocol Query; returns as C<raw_send>.

=cut

sub raw_query
{
	my ($s, $sql) = @_;
	return raw_send($s, frontend_message('Q', "$sql\0"));
}

=item read_until_ready($s, $timeout)

Reads up to ReadyForQuery (or EOF, a bad length, or C<$timeout> seconds in
all) and returns a hashref: C<types> (the message types read, joined by
spaces, e.g. C<'T D C Z'>), C<error> (C<parse_fields> of the last
ErrorResponse), C<pid> and C<key> (BackendKeyData, if any) and C<rows>
(each DataRow as an arrayref of column values, NULL as undef).

=cut

sub read_until_ready
{
	my ($s, $timeout) = @_;
	my $deadline = time + $timeout;
	my %r = (types => [], rows => []);
	while (1) {
		my ($t, $b) = read_msg($s, $deadline - time);
		push @{ $r{types} }, $t;
		last if $t eq 'EOF' || $t eq 'TIMEOUT' || $t eq 'BADLEN' || $t eq 'Z';
		$r{error} = parse_fields($b) if $t eq 'E';
		@r{qw(pid key)} = unpack('N N', $b) if $t eq 'K';
		push @{ $r{rows} }, parse_datarow($b) if $t eq 'D';
	}
	$r{types} = join(' ', @{ $r{types} });
	return \%r;
}

=item parse_datarow($body)

The column values of a DataRow body as an arrayref (NULL as undef).

=cut

sub parse_datarow
{
	my ($b) = @_;
	my ($n, $rest) = unpack('n a*', $b);
	my @cols;
	for (1 .. $n) {
		my $l = unpack('l>', $rest);
		$rest = substr($rest, 4);
		push @cols, $l < 0 ? undef : substr($rest, 0, $l);
		$rest = substr($rest, $l) if $l > 0;
	}
	return \@cols;
}

=item send_cancel($host, $port, $pid, $key)

Sends a CancelRequest for C<($pid, $key)> on a new connection and returns
what came back within 3 s: C<'EOF'> when the server closed the connection
without answering, as it should.

=back

=cut

sub send_cancel
{
	my ($host, $port, $pid, $key) = @_;
	my $c = raw_connect($host, $port);
	raw_send($c, pack('N N N N', 16, CANCEL_REQUEST_CODE, $pid, $key));
	my ($t) = read_msg($c, 3);
	close $c;
	return $t;
}


=head2 Added for the core regression tests (issue 10)

=over

=item raw_reset($s)

Closes C<$s> with an RST instead of a FIN (SO_LINGER on, timeout 0).

=cut

sub raw_reset
{
	my ($s) = @_;
	setsockopt($s, SOL_SOCKET, SO_LINGER, pack('i i', 1, 0));
	close $s;
	return 1;
}

=item md5_password($user, $password, $salt)

The answer to an MD5 password request: C<md5> . md5_hex(md5_hex(pw . user) . salt).

=cut

sub md5_password
{
	my ($user, $pw, $salt) = @_;
	return 'md5' . md5_hex(md5_hex($pw . $user) . $salt);
}

=item password_login($s, $user, $password, @kv)

Like C<scram_login> (StartupMessage for C<$user> and database C<postgres>
followed by C<@kv>), but answers whichever request comes: cleartext (3),
MD5 (5) or SASL (10, SCRAM-SHA-256).  Returns the C<read_outcome> of the
last step, with C<methods> (arrayref of the authentication request codes
seen, in order).

=cut

sub password_login
{
	my ($s, $user, $password, @kv) = @_;
	raw_send($s, startup_packet(user => $user, database => 'postgres', @kv));
	my $o = read_outcome($s, 5);
	my @methods;
	push @methods, $o->{auth} if defined $o->{auth};
	if (!$o->{error} && defined $o->{auth} && $o->{auth} == 3) {
		raw_send($s, frontend_message('p', "$password\0"));
		$o = read_outcome($s, 5);
	} elsif (!$o->{error} && defined $o->{auth} && $o->{auth} == 5) {
		raw_send($s, frontend_message('p',
			md5_password($user, $password, substr($o->{auth_body}, 0, 4)) . "\0"));
		$o = read_outcome($s, 5);
	} elsif (!$o->{error} && defined $o->{auth} && $o->{auth} == 10) {
		my $nonce = encode_base64(join('', map { chr(int rand 256) } 1 .. 18), '');
		my $cfb = "n=,r=$nonce";
		my $cf = "n,,$cfb";
		raw_send($s, frontend_message('p', "SCRAM-SHA-256\0" . pack('N', length $cf) . $cf));
		$o = read_outcome($s, 5);
		if (!$o->{error} && defined $o->{auth} && $o->{auth} == 11) {
			my $sf = $o->{auth_body};
			my ($r) = $sf =~ /r=([^,]+)/;
			my ($salt) = $sf =~ /s=([^,]+)/;
			my ($iter) = $sf =~ /i=(\d+)/;
			my $salted = pbkdf2_sha256($password, decode_base64($salt // ''), $iter // 1);
			my $ck = hmac_sha256('Client Key', $salted);
			my $cfwp = "c=biws,r=$r";
			my $sig = hmac_sha256("$cfb,$sf,$cfwp", sha256($ck));
			raw_send($s, frontend_message('p', "$cfwp,p=" . encode_base64($ck ^ $sig, '')));
			$o = read_outcome($s, 5);
		}
	}
	$o->{methods} = \@methods;
	return $o;
}

=item ext_query($sql)

The bytes of an unnamed Parse, Bind (no parameters, text results) and
Execute (no row limit) of C<$sql>, without Sync.

=item msg_sync(), msg_flush()

The bytes of a Sync ('S') and of a Flush ('H').

=cut

sub ext_query
{
	my ($sql) = @_;
	return frontend_message('P', "\0$sql\0" . pack('n', 0))
	    . frontend_message('B', "\0\0" . pack('n n n', 0, 0, 0))
	    . frontend_message('E', "\0" . pack('N', 0));
}

sub msg_sync  { frontend_message('S', '') }
sub msg_flush { frontend_message('H', '') }

=item read_until_n_ready($s, $n, $timeout)

Reads until the C<$n>th ReadyForQuery (or EOF/timeout, C<$timeout> seconds
in all).  Returns a hashref: C<types> (arrayref of the message types),
C<errors> (arrayref of C<parse_fields> of each ErrorResponse), C<rows>
(count of DataRows), C<ready> (count of ReadyForQuery) and C<bytes>
(total bytes of DataRow bodies).

=back

=cut

sub read_until_n_ready
{
	my ($s, $n, $timeout) = @_;
	my $deadline = time + $timeout;
	my %r = (types => [], errors => [], rows => 0, ready => 0, bytes => 0);
	while ($r{ready} < $n) {
		my $left = $deadline - time;
		if ($left <= 0) { push @{ $r{types} }, 'TIMEOUT'; last }
		my ($t, $b) = read_msg($s, $left);
		push @{ $r{types} }, $t;
		last if $t eq 'EOF' || $t eq 'TIMEOUT' || $t eq 'BADLEN';
		push @{ $r{errors} }, parse_fields($b) if $t eq 'E';
		if ($t eq 'D') { $r{rows}++; $r{bytes} += length $b }
		$r{ready}++ if $t eq 'Z';
	}
	return \%r;
}


=over

=item scram_abandon($s, $user, $password, $stop, @kv)

Runs a SCRAM-SHA-256 login on C<$s> only up to C<$stop> and returns
without closing (the caller closes with C<close> or C<raw_reset>):
C<startup> (StartupMessage sent), C<first_read> (the SASL request read),
C<init_sent> (SASLInitialResponse sent), C<cont_read> (SASLContinue read),
C<final_sent> (client-final message sent, answer not read).  Returns 1 if
every step up to C<$stop> went as expected.

=back

=cut

sub scram_abandon
{
	my ($s, $user, $password, $stop, @kv) = @_;
	raw_send($s, startup_packet(user => $user, database => 'postgres', @kv));
	return 1 if $stop eq 'startup';
	my $o = read_outcome($s, 5);
	return 0 unless defined $o->{auth} && $o->{auth} == 10 && !$o->{error};
	return 1 if $stop eq 'first_read';
	my $nonce = encode_base64(join('', map { chr(int rand 256) } 1 .. 18), '');
	my $cfb = "n=,r=$nonce";
	my $cf = "n,,$cfb";
	raw_send($s, frontend_message('p', "SCRAM-SHA-256\0" . pack('N', length $cf) . $cf));
	return 1 if $stop eq 'init_sent';
	$o = read_outcome($s, 5);
	return 0 unless defined $o->{auth} && $o->{auth} == 11 && !$o->{error};
	return 1 if $stop eq 'cont_read';
	my $sf = $o->{auth_body};
	my ($r) = $sf =~ /r=([^,]+)/;
	my ($salt) = $sf =~ /s=([^,]+)/;
	my ($iter) = $sf =~ /i=(\d+)/;
	my $salted = pbkdf2_sha256($password, decode_base64($salt), $iter);
	my $ck = hmac_sha256('Client Key', $salted);
	my $cfwp = "c=biws,r=$r";
	my $sig = hmac_sha256("$cfb,$sf,$cfwp", sha256($ck));
	return raw_send($s, frontend_message('p', "$cfwp,p=" . encode_base64($ck ^ $sig, '')));
}

1;
