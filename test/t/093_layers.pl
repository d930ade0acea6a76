# 093_layers.pl -- the modules call only downward: the call graph between
# src/*.c files, read from the compiled objects' symbol tables, has no cycle.
#
# A module reaches a layer above it only through an ops table of function
# pointers that main.c fills at start-up (client_ops, server_ops, ...);
# such calls do not appear as undefined symbols, so they are not edges
# here.  Shared struct types in headers are not calls either.  The test
# prints the layers it finds, lowest first, and fails on any cycle with
# the calls that make it.

use strict;
use warnings;

use FindBin;
use Test::More;

my $root = "$FindBin::Bin/../..";
my $build = ($ENV{PGSLAB} // '') =~ /-asan$/ ? 'build/asan' : 'build/rel';
my @objs = glob("$root/$build/*.o");
BAIL_OUT("no objects in $build: build first (make)") if @objs < 10;

my (%def, %und);
for my $o (@objs) {
	my ($m) = $o =~ m{([^/]+)\.o$};
	open(my $nm, '-|', 'nm', $o) or BAIL_OUT("nm: $!");
	while (<$nm>) {
		if (/^\s+U (\w+)$/) {
			push @{ $und{$m} }, $1;
		} elsif (/^[0-9a-f]+ [TDBR] (\w+)$/) {
			$def{$1} = $m;
		}
	}
	close($nm);
}

my (%edge, %why);
for my $m (keys %und) {
	for my $sym (@{ $und{$m} }) {
		my $to = $def{$sym} // next;
		next if $to eq $m;
		$edge{$m}{$to} = 1;
		push @{ $why{"$m>$to"} }, $sym;
	}
}
ok(scalar(keys %edge) > 10, 'the objects call each other (' . scalar(keys %edge) . ' callers)');

# Tarjan's strongly connected components
my ($index, @stack, %idx, %low, %on, @sccs) = (0);
my $visit;
$visit = sub {
	my ($v) = @_;
	$idx{$v} = $low{$v} = $index++;
	push @stack, $v;
	$on{$v} = 1;
	for my $w (sort keys %{ $edge{$v} // {} }) {
		if (!defined $idx{$w}) {
			$visit->($w);
			$low{$v} = $low{$w} if $low{$w} < $low{$v};
		} elsif ($on{$w}) {
			$low{$v} = $idx{$w} if $idx{$w} < $low{$v};
		}
	}
	if ($low{$v} == $idx{$v}) {
		my @c;
		my $w;
		do { $w = pop @stack; delete $on{$w}; push @c, $w } while ($w ne $v);
		push @sccs, \@c;
	}
};
my %mods = map { (m{([^/]+)\.o$})[0] => 1 } @objs;
$visit->($_) for grep { !defined $idx{$_} } sort keys %mods;

my @cycles = grep { @$_ > 1 } @sccs;
for my $c (@cycles) {
	my %in = map { $_ => 1 } @$c;
	my @calls;
	for my $a (sort @$c) {
		for my $b (sort keys %{ $edge{$a} }) {
			push @calls, "$a -> $b (" . join(', ', @{ $why{"$a>$b"} }) . ')' if $in{$b};
		}
	}
	diag("cycle among " . join(' ', sort @$c) . ":\n  " . join("\n  ", @calls));
}
is(scalar(@cycles), 0, 'no cycle in the call graph between source files');

# layers: a module's level is one more than the highest it calls
my %level;
my $lv;
$lv = sub {
	my ($m, $seen) = @_;
	return $level{$m} if defined $level{$m};
	return 0 if $seen->{$m}++;
	my $l = 0;
	for my $to (keys %{ $edge{$m} // {} }) {
		my $t = $lv->($to, $seen) + 1;
		$l = $t if $t > $l;
	}
	return $level{$m} = $l;
};
$lv->($_, {}) for sort keys %mods;
my %by;
push @{ $by{ $level{$_} } }, $_ for sort keys %mods;
note("level $_: " . join(' ', @{ $by{$_} })) for sort { $a <=> $b } keys %by;

# the lowest layers stay below the pooler: they call none of its modules
my @pooler = qw(client server pool proxy control admin metrics listener authq cancel);
for my $low (qw(stream slab buddy proto track prep log tls crypto)) {
	next unless $mods{$low};
	my @up = grep { $edge{$low}{$_} } @pooler;
	is("@up", '', "$low calls no pooler module");
}

done_testing();
