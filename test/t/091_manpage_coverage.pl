# 091_manpage_coverage.pl -- every setting the config tables know is documented, with the
# right default and flags, in pgslab.ini(5) and in conf/pgslab.ini, so they cannot drift.
#
# Source of truth: src/config.c (setting_table for [pgbouncer], db_keys for
# [databases], user_keys for [users]); pgslab has no option that lists its
# settings, so the tables are parsed.  Needs no pandoc: it reads the Markdown.

use strict;
use warnings;

use FindBin;
use Test::More;

my $root = "$FindBin::Bin/../..";

sub slurp
{
	my ($p) = @_;
	open(my $fh, '<', $p) or die "$p: $!";
	local $/;
	return scalar <$fh>;
}

my $src  = slurp("$root/src/config.c");
my $man  = slurp("$root/doc/pgslab.ini.5.md");
my $conf = slurp("$root/conf/pgslab.ini");

# ---- the tables in src/config.c ----------------------------------------
my ($table) = $src =~ /setting_table\[\]\s*=\s*\{(.*?)\n\};/s
    or BAIL_OUT('setting_table not found in src/config.c');
my %setting;
while ($table =~ /^\s*K_(\w+)\((\w+),\s*([^,]+),\s*("(?:[^"\\]|\\.)*"|\w+)/mg) {
	my ($type, $name, $flags, $dflt) = ($1, $2, $3, $4);
	if ($dflt =~ /^"(.*)"$/) {
		$dflt = $1;
	} else {	# a macro of concatenated string literals
		my ($def) = $src =~ /#define\s+\Q$dflt\E\s+((?:.*\\\n)*.*)/
		    or BAIL_OUT("default macro $dflt not found");
		$dflt = join('', $def =~ /"((?:[^"\\]|\\.)*)"/g);
	}
	$setting{$name} = {
		type     => $type,
		dflt     => $dflt,
		norelo   => ($flags =~ /\bN\b/ ? 1 : 0),
		unsupp   => ($flags =~ /\bU\b/ ? 1 : 0),
	};
}
my $n = scalar keys %setting;
cmp_ok($n, '>=', 100, "parsed $n [pgbouncer] settings from src/config.c");
my $count = () = $table =~ /^\s*K_\w+\(/mg;
is($n, $count, 'every table row parsed');

sub entry_keys
{
	my ($array) = @_;
	my ($body) = $src =~ /\b$array\[\]\s*=\s*\{(.*?)\n\};/s
	    or BAIL_OUT("$array not found in src/config.c");
	return $body =~ /\{\s*"(\w+)"/g;
}
my @db_keys   = entry_keys('db_keys');
my @user_keys = entry_keys('user_keys');
cmp_ok(scalar @db_keys, '>=', 20, 'parsed [databases] keys');
cmp_ok(scalar @user_keys, '>=', 10, 'parsed [users] keys');

# ---- pgslab.ini(5) ------------------------------------------------------
# Each [pgbouncer] setting is a "### name" section whose first paragraph is
# "Default: `value`." or "Default: empty.", then "Restart needed." and
# "Not implemented yet." exactly when the table says so.
my ($pgb) = $man =~ /^# SECTION \[pgbouncer\]\n(.*?)(?=^# )/ms
    or BAIL_OUT('no "# SECTION [pgbouncer]" in doc/pgslab.ini.5.md');
my %doc;
for my $sec (split /^### /m, $pgb) {
	my ($name, $body) = $sec =~ /^(\w+)\n\n(.*)/s or next;
	my ($first) = split /\n\n/, $body;
	$first =~ s/\s+/ /g;
	$doc{$name} = $first;
}
for my $name (sort keys %setting) {
	my $s = $setting{$name};
	my $p = $doc{$name};
	ok(defined $p, "pgslab.ini(5) documents $name") or next;
	my $want = $s->{dflt} eq '' ? 'Default: empty.' : "Default: `$s->{dflt}`.";
	ok(index($p, $want) == 0, "pgslab.ini(5): $name $want")
	    or diag("first paragraph: $p");
	is($p =~ /\bRestart needed\./ ? 1 : 0, $s->{norelo},
		"pgslab.ini(5): $name restart-needed flag matches the table");
	is($p =~ /\bNot implemented yet\./ ? 1 : 0, $s->{unsupp},
		"pgslab.ini(5): $name not-implemented flag matches the table");
}
my @extra = grep { !$setting{$_} } sort keys %doc;
is_deeply(\@extra, [], 'pgslab.ini(5) documents no setting the table lacks');

my ($dbsec) = $man =~ /^# SECTION \[databases\]\n(.*?)(?=^# )/ms;
my ($usec)  = $man =~ /^# SECTION \[users\]\n(.*?)(?=^# )/ms;
ok(defined $dbsec && defined $usec, 'pgslab.ini(5) has [databases] and [users] sections');
for my $k (@db_keys) {
	like($dbsec // '', qr/\*\*\Q$k\E\*\*/, "pgslab.ini(5) [databases] documents $k");
}
for my $k (@user_keys) {
	like($usec // '', qr/\*\*\Q$k\E\*\*/, "pgslab.ini(5) [users] documents $k");
}

# ---- conf/pgslab.ini ----------------------------------------------------
# ";name = default", with "; (restart needed)" exactly for restart-only settings.
my %ex;
while ($conf =~ /^;(\w+) =[ ]?(.*?)[ ]*$/mg) {
	$ex{$1} = $2;
}
for my $name (sort keys %setting) {
	my $line = $ex{$name};
	ok(defined $line, "conf/pgslab.ini lists $name") or next;
	my $restart = $line =~ s/\s*;\s*\(restart needed\)$// ? 1 : 0;
	is($line, $setting{$name}{dflt}, "conf/pgslab.ini: $name default");
	is($restart, $setting{$name}{norelo}, "conf/pgslab.ini: $name restart-needed note");
}
my ($cdb) = $conf =~ /^\[databases\]\n(.*?)^\[/ms;
my ($cus) = $conf =~ /^\[users\]\n(.*?)^\[/ms;
for my $k (@db_keys) {
	ok(($cdb // '') =~ /^;;.*\b\Q$k\E\b/m, "conf/pgslab.ini [databases] comment names $k");
}
for my $k (@user_keys) {
	ok(($cus // '') =~ /^;;.*\b\Q$k\E\b/m, "conf/pgslab.ini [users] comment names $k");
}

done_testing();
