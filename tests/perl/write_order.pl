#!/usr/bin/perl
# Write order against direct fh use and on_drain timing, as the real
# AnyEvent::Handle has them; write_order.py is its line-for-line port and
# tests/test_handle_write_order.py runs both.
#
# usage: perl write_order.pl PORT SCENARIO
# Connects to 127.0.0.1:PORT, waits for one line, runs SCENARIO, prints a
# trace of what ran in which order to stdout, exits at EOF.
use strict;
use warnings;
use AnyEvent;
use AnyEvent::Handle;
use AnyEvent::Socket;
use Socket qw(SHUT_WR);

alarm 20;
$| = 1;
my ($port, $scenario) = @ARGV;
my $done = AE::cv;

my %scenario = (
   bye_shutdown => sub {
      my ($hdl) = @_;
      $hdl->push_write ("bye\n");
      shutdown $hdl->{fh}, SHUT_WR;
   },
   header_syswrite => sub {
      my ($hdl) = @_;
      $hdl->push_write ("HEADER\n");
      syswrite $hdl->{fh}, "BODY\n";
      shutdown $hdl->{fh}, SHUT_WR;
   },
   drain_order => sub {
      my ($hdl) = @_;
      $hdl->on_drain (sub { print "on_drain\n" });
      print "pushing\n";
      $hdl->push_write ("data\n");
      print "pushed\n";
      $hdl->on_drain (undef);
      shutdown $hdl->{fh}, SHUT_WR;
   },
);

tcp_connect "127.0.0.1", $port, sub {
   my ($fh) = @_ or die "connect: $!";
   my $hdl; $hdl = AnyEvent::Handle->new (
      fh       => $fh,
      on_error => sub { print "error $_[2]\n"; $hdl->destroy; $done->send },
      on_eof   => sub { print "eof\n"; $hdl->destroy; $done->send },
   );
   $hdl->push_read (line => sub {
      print "line $_[1]\n";
      $scenario{$scenario}->($_[0]);
      print "returned\n";
      $_[0]->on_read (sub { });    # keep reading, to see the EOF
   });
};
$done->recv;
