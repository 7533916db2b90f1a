#!/usr/bin/perl
# bench/frames.py's Perl side: the same four cases, read with
# AnyEvent::Handle's cbor and storable read types (CBOR::XS, Storable) on EV,
# against decode_cbor / thaw alone.  Prints "case<TAB>handle s<TAB>decode s"
# per case, each the best of ROUNDS.  usage: perl frames.pl [ROUNDS]
use strict;
use warnings;
use EV;
use AnyEvent;
use AnyEvent::Handle;
use CBOR::XS ();
use Socket;
use Storable ();
use Time::HiRes ();

my $rounds = shift || 3;

sub through_handle {
   my ($type, $frames) = @_;
   my $n = @$frames;
   my $data = join "", @$frames;
   socketpair my $r, my $w, AF_UNIX, SOCK_STREAM, 0 or die "socketpair: $!";
   my $pid = fork // die "fork: $!";
   unless ($pid) { close $r; syswrite $w, $data; exit 0 }
   close $w;
   my ($cv, $count) = (AE::cv, 0);
   my $h = AnyEvent::Handle->new (fh => $r, on_error => sub { $cv->croak ($_[2]) });
   my $got; $got = sub {
      return $cv->send if ++$count == $n;
      $_[0]->push_read ($type => $got);
   };
   my $start = Time::HiRes::time;
   $h->push_read ($type => $got);
   $cv->recv;
   my $took = Time::HiRes::time - $start;
   waitpid $pid, 0;
   $h->destroy;
   $took
}

sub decoding {
   my ($decode, $payloads) = @_;
   my $start = Time::HiRes::time;
   $decode->($_) for @$payloads;
   Time::HiRes::time - $start
}

sub best { my $best = 9e9; for (1 .. $rounds) { my $t = $_[0]->(); $best = $t if $t < $best } $best }

my @small  = map +{ a => $_, b => [1, 2, 3], c => "hello" }, 0 .. 99_999;
my @medium = map +{ id => $_, name => "x" x 40, tags => ["a", "b", "c"], score => $_ / 7 },
             0 .. 99_999;
my @big    = map [0 .. 19_999], 1 .. 50;

for my $case (["cbor small", "cbor", \@small], ["cbor 100 B", "cbor", \@medium],
              ["storable small", "storable", \@small], ["storable 400 KiB", "storable", \@big]) {
   my ($name, $type, $values) = @$case;
   my ($frames, $payloads, $decode);
   if ($type eq "cbor") {
      $payloads = $frames = [map CBOR::XS::encode_cbor ($_), @$values];
      $decode = \&CBOR::XS::decode_cbor;
   } else {
      $payloads = [map Storable::nfreeze ($_), @$values];
      $frames = [map pack ("w/a*", $_), @$payloads];
      $decode = \&Storable::thaw;
   }
   printf "%s\t%.6f\t%.6f\n", $name, best (sub { through_handle ($type, $frames) }),
          best (sub { decoding ($decode, $payloads) });
}
