# Copyright: Contributors to the smarthost.postfix collection
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The relay model's rules, each with an input it must refuse, and the Postfix state it computes.

No host, no container: load() and Relay.wanted() are plain Python.
"""

from __future__ import annotations

import pytest

from ansible_collections.smarthost.postfix.plugins.module_utils import _relay_model as model

A = dict(host='smtp-a.example.net', username='relay-a', password='A pass:with spaces')
B = dict(host='smtp-b.example.net', port=2525, tls='verify', username='relay-b', password='B-pass')
HOST = model.Host('3.7.11', 'relay1.example.com')


def relay(**params):
    params.setdefault('upstreams', [A, B])
    return model.load(params, 'relay_')


def refused(**params):
    """The messages load() gives for params (an upstream list is added unless given)."""
    params.setdefault('upstreams', [A])
    with pytest.raises(model.InputError) as failure:
        model.load(params, 'relay_')
    return failure.value.errors


def one_error(**params):
    errors = refused(**params)
    assert len(errors) == 1, errors
    return errors[0]


def main_cf(**params):
    return relay(**params).wanted(HOST).parameters


# ---- control characters: in every string that reaches a Postfix file --------------------------------

CONTROL = ['\x00', '\t', '\n', '\x0b', '\x0c', '\r', '\x1f', '\x7f', '\x85', '\u2028', '\u2029']


@pytest.mark.parametrize('char', CONTROL)
@pytest.mark.parametrize('field, params', [
    ('relay_upstreams[0].host', lambda c: dict(upstreams=[dict(A, host='smtp-a.example.net' + c)])),
    ('relay_upstreams[0].username', lambda c: dict(upstreams=[dict(A, username='relay' + c + 'a')])),
    ('relay_upstreams[0].password', lambda c: dict(upstreams=[dict(A, password='Top' + c + 'Secret42')])),
    ('relay_mynetworks[1]', lambda c: dict(mynetworks=['127.0.0.0/8', '10.0.0.0/8' + c])),
    ('relay_inet_interfaces[1]', lambda c: dict(inet_interfaces=['127.0.0.1', '::1' + c])),
    ('relay_myhostname', lambda c: dict(myhostname='relay' + c + '.example.com')),
    ('relay_myorigin', lambda c: dict(myorigin='example.com' + c)),
    ('relay_sender_address', lambda c: dict(sender_address='alerts@example.com' + c)),
    ('relay_root_forward', lambda c: dict(root_forward='ops@example.com' + c)),
    ('relay_tls_ca_file', lambda c: dict(tls_ca_file='/etc/ssl/ca.pem' + c)),
    ('relay_extra_parameters.mydomain', lambda c: dict(extra_parameters={'mydomain': 'example.com' + c})),
    ('relay_extra_parameters.mydomain?', lambda c: dict(extra_parameters={'mydomain' + c: 'example.com'})),
    ('relay_sender_rewrite[root@relay1.example.com]', lambda c: dict(sender_rewrite={'root@relay1.example.com': 'a@example.com' + c})),
])
def test_control_characters_are_refused_and_never_shown(field, params, char):
    message = one_error(**params(char))
    assert message.startswith(field + ': ')
    assert char not in message
    assert 'Secret42' not in message


def test_the_reproduced_open_relay_injection_is_refused():
    message = one_error(inet_interfaces=['127.0.0.1', '::1%0\nrelay_domains = static:all'])
    assert message.startswith('relay_inet_interfaces[1]:') and 'relay_domains' not in message


@pytest.mark.parametrize('address', ['fe80::1%eth0', '::1%0'])
def test_ipv6_zone_ids_are_refused(address):
    assert 'no zone ids' in one_error(inet_interfaces=[address])
    assert one_error(mynetworks=[address + '/128']).startswith('relay_mynetworks[0]:')


def test_a_trailing_newline_does_not_pass_an_anchored_check():
    for params in (dict(myhostname='relay.example.com\n'), dict(upstreams=[dict(A, host='a.example.net\n')]),
                   dict(extra_parameters={'smtp_fallback_relay\n': '[evil.example]:25'})):
        assert refused(**params)


# ---- lookup-table sources: only the newline ends a line ----------------------------------------------

def test_map_values_hold_no_character_that_splits_a_line_for_python_but_not_postfix():
    # \x0b in a username made --diff print the entry unmasked; \x0c rewrote the map on every run.
    assert refused(upstreams=[dict(A, username='leaky\x0b', password='TopSecret42')])
    assert refused(upstreams=[dict(A, password='TopSecret42\x0c')])


# ---- no open relay by accident -----------------------------------------------------------------------

@pytest.mark.parametrize('network', ['0.0.0.0/0', '::/0', '8.0.0.0/16', '2001:db8::/32', '10.0.0.0/7', '0.0.0.0/1'])
def test_wide_networks_are_refused_without_the_override(network):
    message = one_error(mynetworks=['127.0.0.0/8', network])
    assert message.startswith('relay_mynetworks[1]:') and 'open relay' in message and 'relay_allow_wide_mynetworks' in message
    assert relay(mynetworks=[network], allow_wide_mynetworks=True).mynetworks


@pytest.mark.parametrize('network', ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10', '203.0.113.0/24',
                                     '198.51.100.7/32', '198.51.100.7', 'fd00::/8', '2001:db8:1::/48', '[::1]/128'])
def test_private_and_narrow_public_networks_are_accepted(network):
    assert relay(mynetworks=[network]).mynetworks


@pytest.mark.parametrize('network, fragment', [
    ('10.89.77.0/33', 'not a valid CIDR'), ('relay.example.com', 'not a valid CIDR'),
    ('10.1.2.3/8', "did you mean '10.0.0.0/8'"), ('[10.0.0.0]/8', 'brackets are for IPv6 only'),
    ('2001:DB8::1/64', "did you mean '[2001:db8::]/64'"),
])
def test_bad_networks_name_the_entry(network, fragment):
    message = one_error(mynetworks=['127.0.0.0/8', network])
    assert message.startswith('relay_mynetworks[1]: ') and fragment in message


def test_networks_are_written_in_postfix_notation():
    assert main_cf(mynetworks=['127.0.0.0/8', '2001:DB8::/48', '[fd00::]/8'])['mynetworks'] == \
        '127.0.0.0/8, [2001:db8::]/48, [fd00::]/8'


# ---- extra_parameters: Postfix names, nothing the model owns, nothing that opens relaying ------------

@pytest.mark.parametrize('name, instead', [
    ('relayhost', 'relay_upstreams'), ('smtp_fallback_relay', 'relay_upstreams'), ('fallback_relay', 'relay_upstreams'),
    ('lmtp_fallback_relay', 'relay_upstreams'), ('mynetworks', 'relay_mynetworks'), ('relay_domains', 'relay_mynetworks'),
    ('smtpd_relay_restrictions', 'relay_mynetworks'), ('smtpd_recipient_restrictions', 'relay_recipient_domains'),
    ('smtpd_sender_restrictions', 'relay_sender_allowlist'),
    ('smtp_sasl_password_maps', 'relay_upstreams'), ('transport_maps', 'relay_routes'),
    ('sender_dependent_relayhost_maps', 'relay_upstreams'), ('sender_dependent_default_transport_maps', 'relay_routes'),
    ('relay-alpha_destination_rate_delay', 'relay_routes'), ('sender_canonical_maps', 'relay_sender_address'),
    ('header_checks', 'relay_sender_address'), ('smtp_sasl_mechanism_filter', 'relay_sasl_mechanisms'),
    ('smtp_tls_cert_file', 'relay_tls_client_cert'), ('smtp_destination_rate_delay', 'relay_rate_delay'),
    ('smtp_sender_dependent_authentication', 'relay_upstreams'), ('inet_interfaces', 'relay_inet_interfaces'),
    ('smtp_tls_CAfile', 'relay_tls_ca_file'), ('smtp_generic_maps', 'relay_sender_rewrite'),
    ('smtp_mx_address_limit', 'relay_upstream_address_limit'),
])
def test_extra_parameters_refuse_what_the_model_owns_or_what_opens_relaying(name, instead):
    message = one_error(extra_parameters={name: 'x'})
    assert message.startswith('relay_extra_parameters.%s: ' % name) and message.endswith('use %s instead' % instead)


def test_every_parameter_the_model_writes_is_refused_in_extra_parameters():
    for parameter in model.MAIN_CF:
        assert one_error(extra_parameters={parameter.name: 'x'}).startswith('relay_extra_parameters.' + parameter.name)
    assert one_error(extra_parameters={'biff': 'yes'}).endswith('it cannot be changed')


def test_extra_parameters_accept_real_names_with_capitals_and_convert_values():
    parameters = main_cf(extra_parameters={'smtp_tls_CApath': '/etc/ssl/certs', 'smtputf8_enable': False,
                                           'smtp_tls_mandatory_protocols': ['!SSLv2', '!SSLv3'], 'delay_warning_time': 4,
                                           'smtp_tls_exclude_ciphers': ''})
    assert parameters['smtp_tls_CApath'] == '/etc/ssl/certs'
    assert parameters['smtputf8_enable'] == 'no'
    assert parameters['smtp_tls_mandatory_protocols'] == '!SSLv2, !SSLv3'
    assert parameters['delay_warning_time'] == '4'
    assert relay(extra_parameters={'smtp_tls_exclude_ciphers': ''}).wanted(HOST).main_cf.endswith('smtp_tls_exclude_ciphers = \n')


@pytest.mark.parametrize('name', ['1abc', 'has space', 'semi;colon', 'a=b', '', '_leading'])
def test_extra_parameter_names_are_postfix_names(name):
    assert 'is not a Postfix parameter name' in one_error(extra_parameters={name: 'x'})


# ---- addresses are plain addresses -------------------------------------------------------------------

@pytest.mark.parametrize('address', ['|/usr/bin/logger@example.com', '/var/mail/x@example.com', ':include:/x@example.com',
                                     '"quoted"@example.com', 'a b@example.com', 'no-at-sign', 'ops@', '@example.com',
                                     'ops@exa_mple.com', 'ops@example.com,evil@example.com', '.ops@example.com'])
def test_root_forward_and_sender_address_are_plain_addresses(address):
    assert one_error(root_forward=address).startswith('relay_root_forward: ')
    assert one_error(sender_address=address).startswith('relay_sender_address: ')


def test_sender_rewrite_keys_may_be_domains_values_may_not():
    assert relay(sender_rewrite={'@relay1.example.com': 'alerts@example.com'}).sender_rewrite
    assert one_error(sender_rewrite={'@relay1.example.com': '@example.com'}).startswith('relay_sender_rewrite[@relay1.example.com]:')
    assert one_error(sender_rewrite={'|cmd@x.test': 'alerts@example.com'}).startswith('relay_sender_rewrite[|cmd@x.test] key:')


# ---- upstreams -----------------------------------------------------------------------------------------

def test_a_port_given_as_a_string_is_accepted():
    assert relay(upstreams=[dict(A, port='587')]).upstreams[0].nexthop == '[smtp-a.example.net]:587'


@pytest.mark.parametrize('port', [0, 70000, -1, '58 7', 'abc', True, 5.5, '99999'])
def test_ports_outside_the_range_are_refused(port):
    assert one_error(upstreams=[dict(A, port=port)]).startswith('relay_upstreams[0].port: ')


@pytest.mark.parametrize('host', ['', 'smtp a.example.net', '-bad.example.net', 'a..b', 'a' * 64 + '.example', 'exa_mple.com'])
def test_bad_host_names_are_refused(host):
    assert one_error(upstreams=[dict(A, host=host)]).startswith('relay_upstreams[0].host: ')


def test_next_hops_are_the_keys_of_relayhost_fallbacks_and_maps():
    r = relay(upstreams=[A, B, dict(host='2001:db8::25', port=25, tls='may'), dict(host='example.net', mx_lookup=True)])
    wanted = r.wanted(HOST)
    hops = ['[smtp-a.example.net]:587', '[smtp-b.example.net]:2525', '[ipv6:2001:db8::25]:25', 'example.net:587']
    assert wanted.parameters['relayhost'] == hops[0]
    assert wanted.parameters['smtp_fallback_relay'] == ', '.join(hops[1:])
    sasl, policy = wanted.tables[0], wanted.tables[1]
    assert sasl.entries == {hops[0]: 'relay-a:A pass:with spaces', hops[1]: 'relay-b:B-pass'}
    assert sasl.secret and sasl.mode == '0600' and policy.mode == '0644'
    # tls verify sends the host name in SNI (servername=hostname); an address gets no SNI.
    assert policy.entries == dict(zip(hops, ['encrypt', 'verify servername=hostname', 'may', 'encrypt']))
    assert wanted.parameters['smtp_tls_security_level'] == 'may'


@pytest.mark.parametrize('upstreams, field, fragment', [
    ([dict(A, password=None)], 'relay_upstreams[0]', 'username and password go together'),
    ([dict(A, username=None)], 'relay_upstreams[0]', 'username and password go together'),
    ([dict(A, username='a:b')], 'relay_upstreams[0].username', "must not contain ':'"),
    ([dict(A, password=' padded')], 'relay_upstreams[0].password', 'must not start or end with blanks'),
    ([dict(A, password='')], 'relay_upstreams[0].password', 'must not be empty'),
    ([dict(A, tls='none')], 'relay_upstreams[0]', 'relay_allow_plaintext_auth'),
    ([dict(A, implicit_tls=True, port=465, tls='may')], 'relay_upstreams[0]', 'implicit_tls needs tls encrypt'),
    ([dict(A, mx_lookup=True, host='192.0.2.1')], 'relay_upstreams[0]', 'mx_lookup needs a domain name'),
    ([A, dict(A, username='other')], 'relay_upstreams[1]', 'same next-hop as relay_upstreams[0]'),
    ([A, dict(B, implicit_tls=True, port=465)], 'relay_upstreams', 'cannot be mixed in one list of upstreams'),
    ([dict(A, pasword='typo')], 'relay_upstreams[0]', 'unknown key(s) pasword'),
    ([], 'relay_upstreams', 'at least one upstream'),
    (['smtp-a.example.net'], 'relay_upstreams[0]', 'must be a dict'),
])
def test_upstream_rules(upstreams, field, fragment):
    message = one_error(upstreams=upstreams)
    assert message.startswith(field + ': ') and fragment in message


def test_passwords_never_appear_in_messages():
    errors = refused(upstreams=[dict(A, password=' TopSecret42'), dict(B, password='TopSecret42\n'),
                                dict(host='c.example.net', password='TopSecret42')])
    assert len(errors) == 3 and not [e for e in errors if 'TopSecret42' in e]


def test_non_ascii_passwords_are_accepted():
    assert relay(upstreams=[dict(A, password='Pässwört-日本')]).sasl_entries() == \
        {'[smtp-a.example.net]:587': 'relay-a:Pässwört-日本'}


def test_plaintext_credentials_need_the_explicit_permission():
    r = relay(upstreams=[dict(A, tls='none')], allow_plaintext_auth=True)
    assert r.wanted(HOST).parameters['smtp_sasl_security_options'] == 'noanonymous'
    assert main_cf()['smtp_sasl_security_options'] == 'noanonymous, noplaintext'


def test_implicit_tls_for_all_upstreams():
    parameters = main_cf(upstreams=[dict(A, port=465, implicit_tls=True), dict(B, port=465, implicit_tls=True)])
    assert parameters['smtp_tls_wrappermode'] == 'yes'
    assert 'smtp_tls_wrappermode' not in main_cf()


# ---- scalars -------------------------------------------------------------------------------------------

@pytest.mark.parametrize('params, field', [
    (dict(connect_timeout=0), 'relay_connect_timeout'), (dict(helo_timeout=301), 'relay_helo_timeout'),
    (dict(upstream_address_limit=0), 'relay_upstream_address_limit'), (dict(tls_ca_file='relative/ca.pem'), 'relay_tls_ca_file'),
    (dict(tls_ca_file='/etc/ssl/my ca.pem'), 'relay_tls_ca_file'), (dict(map_type='dbm'), 'relay_map_type'),
    (dict(state='gone'), 'relay_state'), (dict(inet_interfaces='everywhere'), 'relay_inet_interfaces'),
    (dict(inet_interfaces=['localhost']), 'relay_inet_interfaces[0]'), (dict(myorigin='$other'), 'relay_myorigin'),
    (dict(allow_plaintext_auth='yes'), 'relay_allow_plaintext_auth'), (dict(no_such_option=1), 'relay_no_such_option'),
])
def test_scalar_rules(params, field):
    assert one_error(**params).startswith(field + ': ')


def test_the_prefix_names_fields_as_the_caller_spells_them():
    with pytest.raises(model.InputError) as failure:
        model.load(dict(upstreams=[dict(A, port=0)]))
    assert failure.value.errors == ['upstreams[0].port: 0 is not a port (1-65535)']
    assert str(failure.value) == 'Invalid relay input: upstreams[0].port: 0 is not a port (1-65535)'


def test_all_problems_are_reported_at_once():
    assert len(refused(upstreams=[dict(A, port=0), dict(B, tls='bogus')], mynetworks=['0.0.0.0/0'], root_forward='x')) == 4


# ---- the wanted state ----------------------------------------------------------------------------------

def test_the_default_relay_main_cf():
    text = relay().wanted(HOST).main_cf
    assert text.startswith('# Managed by smarthost.postfix')
    assert 'relay_extra_parameters' in text.split('\n')[1]
    lines = text.split('\n')[2:-1]
    names = [line.split(' = ')[0] for line in lines]
    # Written only for the features that need them: implicit TLS, rewriting, routes, allowlists, limits, certificates.
    optional = {'smtp_tls_wrappermode', 'smtp_generic_maps', 'smtpd_sender_restrictions', 'smtpd_recipient_restrictions',
                'sender_dependent_default_transport_maps', 'transport_maps', 'smtp_sasl_mechanism_filter',
                'smtp_tls_cert_file', 'smtp_tls_key_file', 'smtp_destination_concurrency_limit',
                'smtp_destination_rate_delay', 'sender_canonical_maps', 'sender_canonical_classes', 'header_checks',
                'always_add_missing_headers'}
    assert names == [p.name for p in model.MAIN_CF if p.name not in optional]
    parameters = main_cf()
    assert parameters['compatibility_level'] == '3.6'
    assert parameters['myhostname'] == 'relay1.example.com'
    assert parameters['inet_interfaces'] == 'loopback-only'
    assert parameters['mynetworks'] == '127.0.0.0/8, [::1]/128'
    assert parameters['smtpd_relay_restrictions'] == 'permit_mynetworks, reject_unauth_destination'
    assert parameters['smtp_sasl_password_maps'] == 'hash:/etc/postfix/relay_sasl_passwd'
    assert parameters['smtp_connect_timeout'] == '5s' and parameters['smtp_mx_address_limit'] == '1'
    assert parameters['smtp_tls_CAfile'] == '/etc/ssl/certs/ca-certificates.crt'


@pytest.mark.parametrize('version, level', [('3.7.11', '3.6'), ('3.10.5', '3.6'), ('3.5.25', '2'), ('2.10.1', '2'), ('', '3.6')])
def test_compatibility_level_follows_the_postfix_version(version, level):
    assert relay().wanted(model.Host(version, 'x.example.com')).parameters['compatibility_level'] == level


def test_without_credentials_there_is_no_sasl_map():
    wanted = relay(upstreams=[dict(host='hub.example.net', port=25, tls='may')]).wanted(HOST)
    assert wanted.parameters['smtp_sasl_auth_enable'] == 'no'
    assert 'smtp_sasl_password_maps' not in wanted.parameters
    assert wanted.tables[0].name == model.SASL_MAP and wanted.tables[0].entries is None


def test_sender_address_covers_the_local_domains_and_rewrite_wins():
    wanted = relay(sender_address='alerts@example.com', myorigin='example.org',
                   sender_rewrite={'root@relay1.example.com': 'root-alerts@example.com'}).wanted(HOST)
    assert wanted.tables[2].entries == {
        '@relay1.example.com': 'alerts@example.com', '@example.org': 'alerts@example.com', '@localhost': 'alerts@example.com',
        '@localhost.localdomain': 'alerts@example.com', 'root@relay1.example.com': 'root-alerts@example.com'}
    assert wanted.parameters['smtp_generic_maps'] == 'hash:/etc/postfix/relay_generic'
    assert relay().wanted(HOST).tables[2].entries is None


def test_absent_is_local_only_and_wants_no_relay_table():
    r = model.load(dict(state='absent', upstreams='not checked', extra_parameters={'mydomain': 'example.com'}), 'relay_')
    wanted = r.wanted(HOST)
    assert wanted.parameters == {
        'compatibility_level': '3.6', 'myhostname': 'relay1.example.com', 'myorigin': '$myhostname',
        'mydestination': '$myhostname, localhost.$mydomain, localhost', 'alias_maps': 'hash:/etc/aliases',
        'alias_database': 'hash:/etc/aliases', 'default_database_type': 'hash', 'inet_interfaces': 'loopback-only',
        'mynetworks': '127.0.0.0/8, [::1]/128', 'smtpd_relay_restrictions': 'permit_mynetworks, reject_unauth_destination',
        'biff': 'no', 'append_dot_mydomain': 'no'}
    assert all(table.entries is None for table in wanted.tables)
    assert wanted.root_forward is None and wanted.master_cf_enable == []


def test_removable_files_are_only_the_relays_own():
    wanted = relay(map_type='lmdb').wanted(HOST)
    names = ['relay_sasl_passwd', 'relay_sasl_passwd.lmdb', 'relay_sasl_passwd.db', 'relay_generic', 'relay_generic.db',
             'relay_preflight.sha256', 'relay_recipients', 'relay_recipients.db', 'main.cf', 'relay_tls_policy.lmdb']
    assert wanted.removable(names, 'lmdb') == ['relay_generic', 'relay_generic.db', 'relay_preflight.sha256',
                                               'relay_sasl_passwd.db']


def test_upstream_changes_that_the_preflight_checks():
    wanted = relay().wanted(HOST)
    live = dict(wanted.parameters)
    assert wanted.probe_parameters(live) == []
    live.update(relayhost='[old.example.net]:587', smtp_tls_CAfile='/old.pem', mynetworks='127.0.0.0/8')
    assert wanted.probe_parameters(live) == ['relayhost', 'smtp_tls_CAfile']
    assert [table.probe for table in wanted.tables] == [True, True, False, False, False, False]


def test_tls_connection_reuse_enables_tlsproxy():
    assert relay().wanted(HOST).master_cf_enable == [model.TLSPROXY_SERVICE]
    assert relay(tls_connection_reuse=False).wanted(HOST).master_cf_enable == []
    assert relay(tls_connection_reuse=False).wanted(HOST).parameters['smtp_tls_connection_reuse'] == 'no'


def test_options_defaults_are_used_for_missing_and_none_values():
    r = model.load(dict(upstreams=[dict(host='a.example.net', port=None)], mynetworks=None))
    assert r.upstreams[0].port == model.DEFAULT_PORT and r.upstreams[0].tls == model.DEFAULT_TLS
    assert [str(n) for n in r.mynetworks] == ['127.0.0.0/8', '::1/128']
