#!/usr/bin/perl
# Timers and condition variables.  Twin: timers.py (same lines, same order).
# usage: perl timers.pl
use strict;
use warnings;
use AnyEvent;

$| = 1; # print each line at once

# 1. a one-shot timer and a condvar to wait for it
my $cv = AE::cv;
my $once = AE::timer 0.05, 0, sub {
   print "one-shot timer fired\n";
   $cv->send ("done waiting", 42); # recv gets both values
};
print "waiting...\n";
my ($what, $number) = $cv->recv;
print "recv returned: $what, $number\n";

# 2. a periodic timer that stops itself after three ticks
my $ticks = 0;
my $ticked = AE::cv;
my $tick; $tick = AE::timer 0, 0.02, sub {
   ++$ticks;
   print "tick $ticks\n";
   if ($ticks == 3) {
      undef $tick; # the watcher is gone: no more ticks
      $ticked->send;
   }
};
$ticked->recv;

# 3. jobs in parallel: begin/end counts them, the begin callback sends
my @order;
my $all = AE::cv;
$all->begin (sub { shift->send (scalar @order) });
my @timers;
for my $delay (0.03, 0.01, 0.02) {
   $all->begin;
   push @timers, AE::timer $delay, 0, sub {
      push @order, $delay;
      $all->end;
   };
}
$all->end; # all jobs are started
my $count = $all->recv;
print "$count jobs finished in this order: @order\n";

# 4. a condvar with a callback, and postponed code
my $later = AE::cv sub { print "callback got: ", shift->recv, "\n" };
AE::postpone sub { print "postponed code runs first\n" };
my $send_later = AE::timer 0.01, 0, sub { $later->send ("late value") };
$later->recv;

# 5. croak: recv dies with the error
my $failing = AE::cv;
my $fail = AE::timer 0.01, 0, sub { $failing->croak ("no luck\n") };
eval { $failing->recv; 1 } or print "recv died: ", (split /\n/, $@)[0], "\n"; # Carp adds " at line..."
print "all done\n";
