// Registering a meter (admins): the platform records it at key epoch 1 with where it stands; the
// factory station then provisions the board with its keys (npm run flash, tools/factory.ts).
import { useState } from 'preact/hooks';
import { api, ApiError, type FleetRow } from './api';
import type { FleetStore } from './store';

export interface RegistryForm {
  name: string;
  address: string;
  latitude: string;
  longitude: string;
  area: string;
  bays: string;
}

/** The form's text fields as the API's body: empty means "not given". */
export function registryBody(form: RegistryForm): Record<string, unknown> {
  const body: Record<string, unknown> = { name: form.name };
  if (form.address) body.address = form.address;
  if (form.latitude || form.longitude) {
    body.latitude = Number(form.latitude);
    body.longitude = Number(form.longitude);
  }
  if (form.area) body.area = form.area;
  if (form.bays) body.bays = Number(form.bays);
  return body;
}

export function RegistryFields({
  form,
  setForm,
  errorField,
}: {
  form: RegistryForm;
  setForm: (f: RegistryForm) => void;
  errorField: string | undefined;
}) {
  const field = (key: keyof RegistryForm, label: string, extra: Record<string, unknown> = {}) => (
    <label>
      {label}
      <input
        name={key}
        value={form[key]}
        aria-invalid={errorField === key ? 'true' : undefined}
        onInput={(e) => setForm({ ...form, [key]: e.currentTarget.value })}
        {...extra}
      />
    </label>
  );
  return (
    <>
      {field('name', 'Name', { required: true, maxLength: 100 })}
      {field('address', 'Street address', { maxLength: 200 })}
      {field('latitude', 'Latitude', { type: 'number', step: 'any', min: -90, max: 90 })}
      {field('longitude', 'Longitude', { type: 'number', step: 'any', min: -180, max: 180 })}
      {field('area', 'Area', { maxLength: 64 })}
      {field('bays', 'Bays', { type: 'number', min: 1, max: 64 })}
    </>
  );
}

export function RegisterScreen({ store }: { store: FleetStore }) {
  const [id, setId] = useState('');
  const [form, setForm] = useState<RegistryForm>({
    name: '',
    address: '',
    latitude: '',
    longitude: '',
    area: '',
    bays: '',
  });
  const [error, setError] = useState<ApiError | null>(null);
  const [done, setDone] = useState<FleetRow | null>(null);
  const submit = async (event: Event) => {
    event.preventDefault();
    setError(null);
    try {
      const row = await api<FleetRow>('POST', '/api/meters', { id: Number(id), ...registryBody(form) });
      store.put(row);
      setDone(row);
    } catch (e) {
      setError(e instanceof ApiError ? e : new ApiError(0, 'error', String(e)));
    }
  };
  return (
    <div class="register">
      <h1>Register a meter</h1>
      <p>
        The platform records the meter; the factory station then loads its keys (
        <code>npm run flash -- --meter ID</code>).
      </p>
      <form onSubmit={submit} class="grid-form">
        <label>
          Meter id
          <input
            name="id"
            type="number"
            min={0}
            max={4294967295}
            required
            value={id}
            aria-invalid={error?.field === 'id' ? 'true' : undefined}
            onInput={(e) => setId(e.currentTarget.value)}
          />
        </label>
        <RegistryFields form={form} setForm={setForm} errorField={error?.field} />
        <button type="submit">Register</button>
      </form>
      {error && (
        <p role="alert" class="error">
          {error.message}
        </p>
      )}
      {done && (
        <p role="status">
          Meter {done.id} registered; it waits for the factory.{' '}
          <a href={`#/meters/${done.id}`}>Open its page</a>
        </p>
      )}
    </div>
  );
}
